#!/usr/bin/env python3
"""Write tests/fixtures/tokenize_corpus.json: the strings whose token ids we compare
against the reference llama.cpp tokenizer (see scripts/reference/README.md).

Stdlib only. Run from anywhere:  python3 scripts/reference/corpus.py
"""
import json
import os
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "tests", "fixtures", "tokenize_corpus.json")


def corpus():
    c = []
    add = c.append

    # --- edge cases: empty, whitespace, line endings -------------------------------
    for s in ["", " ", "  ", "   ", "\n", "\n\n", "\n\n\n", "\r\n", "\r\n\r\n", "\r", "\t",
              "\t\t", " \n", "\n ", " \t \n", "a", "A", " a", "a ", "  a  ",
              " " * 17, "x" + " " * 17 + "y", "\t \t  \t\n \n\t", "trailing spaces   ",
              "trailing spaces and newline   \n", "line1\r\nline2\r\n", "\u00a0non-breaking\u00a0space",
              "zero\u200bwidth\u200bspace", "tab\tseparated\tvalues\t1\t2\t3"]:
        add(s)

    # --- English prose --------------------------------------------------------------
    add("Hello world")
    add("Hello, world!")
    add("The quick brown fox jumps over the lazy dog.")
    add("It was the best of times, it was the worst of times, it was the age of wisdom, "
        "it was the age of foolishness...")
    add("I'm sure you'll agree: we've done it, haven't we? They're here; it's fine.")
    add("Don't DON'T don't Don'T I'LL I'll I'VE we'RE")
    add("\"Quoted text\" and 'single quotes' and `backticks` and (parentheses) [brackets] {braces}")
    add("Mr. Smith went to Washington, D.C., on Jan. 5th at 3 p.m.")
    add("ALL CAPS SENTENCE WITH SHOUTING!!!")
    add("camelCaseIdentifier snake_case_identifier SCREAMING_SNAKE kebab-case-identifier")
    add("Punctuation?! Ellipsis… em—dash en–dash “curly quotes” ‘single curly’ «guillemets»")
    add("Once upon a time, in a land far, far away, there lived a small dragon who was afraid of fire.\n\n"
        "Every morning she would sit by the lake and watch the ice.")
    add("supercalifragilisticexpialidocious")
    add("pneumonoultramicroscopicsilicovolcanoconiosis")
    add("Antidisestablishmentarianism" * 3)
    add("a" * 100)
    add("ab" * 64)
    add("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!")
    add("==========")
    add("----------------------------------------")
    add("..........")
    add("____________________")
    add("#" * 40)
    add("aaaa bbbb aaaa bbbb aaaa bbbb")
    add("hello\nworld\n")
    add("  leading spaces")
    add("\n\nleading newlines")

    # --- numbers ----------------------------------------------------------------------
    for s in ["0", "1", "12", "123", "1234", "12345", "123456789", "1234567890123456789012345678901234567890",
              "3.14159", "3.141592653589793238462643383279", "-42", "-0.001", "1e-9", "6.022e23", "1E10",
              "+1 (555) 123-4567", "+44 20 7946 0958", "555-0199", "1,000,000", "1.000.000,50",
              "$19.99", "€5", "100%", "0x1F 0xDEADBEEF 0b1010 0o777", "2024-01-15T10:30:00Z",
              "v1.2.3-rc.4+build.5", "192.168.0.1:8080", "1/2 + 3/4 = 5/4", "2^32 = 4294967296",
              "π ≈ 3.14, √2 ≈ 1.414, ∑ x² ≤ ∞"]:
        add(s)

    # --- code -------------------------------------------------------------------------
    add("def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n")
    add("class Foo:\n\tdef __init__(self, x):\n\t\tself.x = x\n\n\tdef __repr__(self):\n\t\treturn f\"Foo({self.x!r})\"\n")
    add("import numpy as np\nx = np.arange(10).reshape(2, 5)  # comment\nprint(x.T @ x)\n")
    add("if __name__ == \"__main__\":\n    main()\n")
    add("    \n        \n")
    add("fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!(\"{:?}\", v);\n}\n")
    add("impl<T: Clone + Send + 'static> Iterator for Foo<T> {\n    type Item = &'a T;\n}")
    add("#[derive(Debug, Clone)]\npub struct Config {\n    pub name: String,\n    pub port: u16,\n}\n")
    add("match x {\n    Some(ref y) if *y > 0 => y.to_string(),\n    _ => unreachable!(),\n}")
    add("const add = (a, b) => a + b;\nconsole.log(`sum: ${add(1, 2)}`);\n")
    add("async function fetchData(url) {\n  const res = await fetch(url);\n  return res.json();\n}\n")
    add("document.querySelectorAll('.item').forEach(el => el.classList.toggle('active'));")
    add("<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Test</title></head>\n"
        "<body>\n  <div class=\"main\" id='x'>Hello &amp; welcome</div>\n</body>\n</html>\n")
    add("<script>alert(\"x\")</script>")
    add("SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC LIMIT 10;")
    add("#include <stdio.h>\nint main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n")
    add("for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }")
    add("$ cargo build --release && ./target/release/minerva serve --port 8080")
    add("x = [1,2,3]; y = {'a': 1, \"b\": 2}; z = (x, y)")
    add("\t\t\t\tdeeply\t\t\tindented")
    add("                 seventeen spaces then text")
    add("code    with    four    space    gaps")
    add("if x:\n\tif y:\n\t\tif z:\n\t\t\tpass\n")
    add("line with trailing tab\t\nline with trailing spaces  \n")
    add("    ")
    add(" " * 8 + "\n" + " " * 16 + "\n" + "\t" * 3)
    add("// comment\n/* block\n * comment */\n# shell comment\n-- sql comment")
    add("a==b!=c<=d>=e&&f||g->h=>i::j..k...l")
    add("regex: ^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\.[a-zA-Z]{2,}$")
    add("C:\\Users\\name\\Documents\\file.txt")
    add("/usr/local/bin/python3 -m pip install --upgrade pip")

    # --- structured text ------------------------------------------------------------------
    add("{\"name\": \"Minerva\", \"version\": \"0.1.0\", \"tags\": [\"llm\", \"rust\"], \"ok\": true, \"n\": null}")
    add("{\n  \"nested\": {\n    \"array\": [1, 2.5, -3e4],\n    \"empty\": {}\n  }\n}")
    add("# Title\n\n## Subtitle\n\n- item one\n- item two\n  - nested *italic* and **bold**\n\n"
        "1. first\n2. second\n\n> quote\n\n```python\nprint('hi')\n```\n")
    add("| col1 | col2 |\n|------|------|\n| a    | b    |\n")
    add("[link](https://example.com/path?query=1&other=two#frag) ![img](a.png)")
    add("https://www.example.com/some/path/to/resource.html?utm_source=test&id=12345")
    add("http://localhost:11434/api/generate")
    add("mailto:someone@example.org ftp://files.example.net/pub/")
    add("key: value\nlist:\n  - a\n  - b\nnested:\n  deep: true\n")
    add("[section]\nkey = \"value\"\nnumber = 42\n")
    add("name,age,city\nAlice,30,Paris\nBob,25,\"New York, NY\"\n")
    add("<?xml version=\"1.0\"?><root attr=\"1\"><child/></root>")

    # --- special tokens written as text -------------------------------------------------------
    for s in ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<start_of_turn>", "<end_of_turn>",
              "<bos>", "<eos>", "<pad>", "<unk>", "<s>", "</s>", "<|im_", "<|im_start", "im_start|>",
              "<start_of_", "<|", "|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
              "<tool_call>", "</tool_call>", "<mask>", "<image_soft_token>",
              "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
              "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n",
              "text<|im_end|>more text", "<bos><bos>hello", "hello<eos>", "<|endoftext|><|endoftext|>",
              " <|im_start|> ", "<|im_start|><|im_end|>", "< |im_start| >", "<|IM_START|>",
              "<<|im_start|>>", "<start_of_turn><end_of_turn>"]:
        add(s)

    # --- emoji ----------------------------------------------------------------------------------
    for s in ["😀", "😀😃😄😁", "I love 🦀 Rust!", "👍🏽", "👋🏻👋🏼👋🏽👋🏾👋🏿",
              "👨‍👩‍👧‍👦", "🏳️‍🌈", "👩‍💻 coding", "🇫🇷🇯🇵🇺🇸", "🇩🇪 Germany",
              "❤️", "✔️ done ❌ failed", "🎉🎊🥳", "1️⃣ 2️⃣ #️⃣", "🧑🏿‍🚀", "☕ + 📖 = 😌",
              "😀" * 10]:
        add(s)

    # --- CJK ------------------------------------------------------------------------------------
    add("你好，世界！")
    add("我爱自然语言处理。今天天气很好，我们去公园散步吧。")
    add("人工智能（AI）是计算机科学的一个分支，它企图了解智能的实质。")
    add("中文和English混合的句子, with 数字 123 和标点。")
    add("こんにちは世界")
    add("日本語のテキストです。カタカナとひらがなと漢字が混ざっています。")
    add("東京は日本の首都です。ラーメンが好き！")
    add("ｆｕｌｌｗｉｄｔｈ　ＡＢＣ　１２３")
    add("안녕하세요, 세계!")
    add("한국어 문장입니다. 오늘은 날씨가 좋습니다.")
    add("繁體中文：電腦與網際網路")

    # --- other scripts -----------------------------------------------------------------------------
    add("مرحبا بالعالم")
    add("اللغة العربية جميلة جداً، وهي لغة القرآن الكريم.")
    add("שלום עולם")
    add("עברית נכתבת מימין לשמאל.")
    add("नमस्ते दुनिया")
    add("हिन्दी भारत की राजभाषा है।")
    add("สวัสดีชาวโลก")
    add("ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ")
    add("Привет, мир!")
    add("Съешь же ещё этих мягких французских булок, да выпей чаю.")
    add("Γειά σου Κόσμε! Αλφάβητο: αβγδε")
    add("Ελληνικά και English και Русский")
    add("Türkçe: çok güzel, ağaç, İstanbul, ılık")
    add("Tiếng Việt có nhiều dấu: người, được, những")
    add("ქართული ენა")
    add("Հայերեն")
    add("বাংলা ভাষা")
    add("தமிழ் மொழி")
    add("አማርኛ")

    # --- accented Latin, NFC and NFD ------------------------------------------------------------------
    for s in ["café", "naïve résumé", "Ångström", "crème brûlée", "façade", "Zürich Straße",
              "niño español año", "Dvořák Škoda", "Łódź", "Ærøskøbing"]:
        nfc = unicodedata.normalize("NFC", s)
        nfd = unicodedata.normalize("NFD", s)
        add(nfc)
        if nfd != nfc:
            add(nfd)
    add("e\u0301\u0301\u0301")  # stacked combining marks
    add("ﬁ ﬂ ligatures")
    add("Ⅻ ① ㈱ ℃ ™ ©")

    # --- mixed / odd ------------------------------------------------------------------------------------------
    add("\x00")
    add("control\x01\x02\x1fchars")
    add("\ufeffBOM at start")
    add("\u2028line separator\u2029paragraph separator")
    add("replacement char \ufffd")
    add("𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math alphanumerics 𝟙𝟚𝟛")
    add("Mixed: Hello 你好 مرحبا Привет 👋 123 <|im_end|>\n\tDone.")
    add(" ".join(["word"] * 50))
    add("\n".join(str(i) for i in range(30)))
    add("The year 2024 had 366 days; 1999 vs 2000 vs 20001.")
    add("x" * 300)
    add("🙂" * 50)
    add("漢" * 40)
    add("a\tb\nc\rd\r\ne")
    return c


def main():
    c = corpus()
    seen = set()
    out = []
    for s in c:
        if s not in seen:
            seen.add(s)
            out.append(s)
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(out)} strings to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
