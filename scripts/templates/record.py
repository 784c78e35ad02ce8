#!/usr/bin/env python3
"""Record chat-template parity fixtures with real jinja2.

Renders chat templates with jinja2 configured exactly as transformers configures it for
`apply_chat_template` (transformers/utils/chat_template_utils.py, `_compile_jinja_template`):

    ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                  extensions=[AssistantTracker, jinja2.ext.loopcontrols])
    filters["tojson"] = json.dumps(x, ensure_ascii=False, indent=indent, separators=..., sort_keys=...)
    globals["raise_exception"], globals["strftime_now"]

and called as transformers calls it:

    template.render(messages=..., tools=..., documents=None, add_generation_prompt=...,
                    bos_token=..., eos_token=..., **extra)

and writes tests/fixtures/templates/cases.json, which crates/minerva-template/tests/parity.rs
replays against the Rust renderer. Each case is
    {"name", "template", "bos_token", "eos_token", "messages", "tools", "add_generation_prompt",
     "extra", "expected", "raised"}
where `expected` is jinja2's output, or null when the template called raise_exception, in
which case `raised` holds the message; `extra` holds extra template kwargs (enable_thinking,
date_string ...) or null. Cases where jinja2 fails for any other reason (sandbox security
errors, iterating None) are skipped and listed on stderr, as are the KNOWN_GAPS below.

Templates: the Qwen2.5-Coder template from a GGUF (`tokenizer.chat_template`, BOS/EOS strings
from the GGUF vocabulary), the crate's ChatML DEFAULT_TEMPLATE, popular templates from
llama.cpp's models/templates (CORE) with a matrix of conversations, every other template in that
directory with two conversations (the sweep; --no-sweep leaves it out), and the small
synthetic templates in synthetic.py.

Usage (needs the pip packages jinja2 and gguf):
    python3 -m venv /root/.cache/minerva/venv-tools
    /root/.cache/minerva/venv-tools/bin/pip install jinja2 gguf
    tar xzf llama_cpp_python-0.3.36.tar.gz -C /tmp/tpl-src \
        --wildcards '*/vendor/llama.cpp/models/templates/*'
    /root/.cache/minerva/venv-tools/bin/python scripts/templates/record.py \
        --gguf /tmp/devmodels/qwen.gguf \
        --templates /tmp/tpl-src/llama_cpp_python-0.3.36/vendor/llama.cpp/models/templates
"""

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conversations import CONVERSATIONS, TOOLS  # noqa: E402
from synthetic import SYNTHETIC  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "tests/fixtures/templates/cases.json"
DEFAULT_TEMPLATE = ROOT / "crates/minerva-template/src/default_template.jinja"


class Raised(Exception):
    """raise_exception() was called by the template."""


class AssistantTracker(jinja2.ext.Extension):
    """transformers' `{% generation %}` tag, without the index tracking (render only)."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(
            self.call_method("_generation_support"), [], [], body
        ).set_lineno(lineno)

    @jinja2.pass_eval_context
    def _generation_support(self, context, caller):
        return caller()


def compile_template(source):
    def raise_exception(message):
        raise Raised(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(format):
        # Pinned (2026-11-27 12:00 UTC), as the Rust parity test pins Minerva's clock
        # (MINERVA_TEMPLATE_NOW): the cases stay valid on any day.
        return datetime(2026, 11, 27, 12, 0, 0).strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


def gguf_template(path):
    from gguf import GGUFReader

    fields = GGUFReader(path).fields
    source = fields["tokenizer.chat_template"].contents()
    tokens = fields["tokenizer.ggml.tokens"]

    def token(key):
        if key not in fields:
            return ""
        return tokens.contents(int(fields[key].contents()))

    return source, token("tokenizer.ggml.bos_token_id"), token("tokenizer.ggml.eos_token_id")


# Popular templates from llama.cpp's models/templates, each with its tokenizer's BOS/EOS
# strings, the conversations to render, and fixed extra kwargs (a fixed date so that
# Llama 3.x output does not depend on the day the fixtures were recorded).
DATE = {"date_string": "26 Jul 2024"}
BASIC = ["system_user", "multi_turn", "no_system", "unicode"]
TOOL_CONVS = ["tools_call", "tools_single_call", "tools_first_turn"]
CORE = [
    ("meta-llama-Llama-3.1-8B-Instruct", "<|begin_of_text|>", "<|eot_id|>", BASIC + TOOL_CONVS, DATE),
    ("meta-llama-Llama-3.2-3B-Instruct", "<|begin_of_text|>", "<|eot_id|>", BASIC + TOOL_CONVS, DATE),
    ("mistralai-Mistral-Nemo-Instruct-2407", "<s>", "</s>", BASIC + TOOL_CONVS + ["bad_alternation"], {}),
    ("Mistral-Small-3.2-24B-Instruct-2506", "<s>", "</s>", BASIC + TOOL_CONVS, {}),
    ("google-gemma-2-2b-it", "<bos>", "<eos>", BASIC, {}),
    ("microsoft-Phi-3.5-mini-instruct", "<s>", "<|endoftext|>", BASIC, {}),
    (
        "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B",
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
        BASIC + ["think_history"] + TOOL_CONVS,
        {},
    ),
    (
        "deepseek-ai-DeepSeek-V3.1",
        "<｜begin▁of▁sentence｜>",
        "<｜end▁of▁sentence｜>",
        BASIC + ["think_history"],
        {"thinking": True},
    ),
    ("Qwen-Qwen3-0.6B", "", "<|im_end|>", BASIC + ["think_history"] + TOOL_CONVS, {}),
    ("Qwen-Qwen3-0.6B", "", "<|im_end|>", ["think_history", "system_user"], {"enable_thinking": False}),
    ("Qwen-QwQ-32B", "", "<|im_end|>", BASIC + ["think_history"] + TOOL_CONVS, {}),
    (
        "CohereForAI-c4ai-command-r7b-12-2024-tool_use",
        "<BOS_TOKEN>",
        "<|END_OF_TURN_TOKEN|>",
        BASIC + TOOL_CONVS,
        {},
    ),
    (
        "NousResearch-Hermes-3-Llama-3.1-8B-tool_use",
        "<|begin_of_text|>",
        "<|im_end|>",
        BASIC + TOOL_CONVS,
        {},
    ),
    ("ibm-granite-granite-3.3-2B-Instruct", "<|end_of_text|>", "<|end_of_text|>", BASIC + TOOL_CONVS, DATE),
    ("openai-gpt-oss-120b", "<|startoftext|>", "<|return|>", BASIC + TOOL_CONVS, {}),
]

# Every other template in the directory is rendered with these, to catch incompatibilities in
# less common constructs.
SWEEP = ["multi_turn", "tools_call"]
SWEEP_TOKENS = ("<s>", "</s>")


# Cases where minijinja cannot follow jinja2; each is listed with the reason instead of recorded.
KNOWN_GAPS = {
    "sweep/meetkai-functionary-medium-v3.1/tools_call": (
        "`'...'|safe + text` HTML-escapes text in jinja2 (markupsafe's Markup.__add__) even "
        "without autoescape; minijinja only escapes when autoescape is on"
    ),
}


def render_case(name, source, bos, eos, conv_name, agp, extra, cases, skipped):
    if name in KNOWN_GAPS:
        skipped.append(f"{name}: known gap: {KNOWN_GAPS[name]}")
        return
    messages, tools = CONVERSATIONS[conv_name]
    case = {
        "name": name,
        "template": source,
        "bos_token": bos,
        "eos_token": eos,
        "messages": messages,
        "tools": tools,
        "add_generation_prompt": agp,
        "extra": extra or None,
        "expected": None,
        "raised": None,
    }
    try:
        template = compile_template(source)
        case["expected"] = template.render(
            messages=messages,
            tools=tools,
            documents=None,
            add_generation_prompt=agp,
            **{"bos_token": bos, "eos_token": eos, **(extra or {})},
        )
    except Raised as e:
        case["raised"] = str(e)
    except Exception as e:  # jinja2 itself cannot render this case
        skipped.append(f"{name}: {type(e).__name__}: {e}")
        return
    cases.append(case)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default="/tmp/devmodels/qwen.gguf")
    ap.add_argument("--templates", required=True, help="llama.cpp models/templates directory")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--no-sweep", action="store_true", help="only the popular templates, not every file")
    args = ap.parse_args()

    cases, skipped = [], []
    tdir = Path(args.templates)

    source, bos, eos = gguf_template(args.gguf)
    for conv in BASIC + TOOL_CONVS:
        for agp in (True, False):
            render_case(f"qwen2.5-coder-gguf/{conv}/agp={agp}", source, bos, eos, conv, agp, {}, cases, skipped)

    default = DEFAULT_TEMPLATE.read_text(encoding="utf-8")
    for conv in BASIC + ["content_parts"]:
        for agp in (True, False):
            render_case(f"default-chatml/{conv}/agp={agp}", default, "", "", conv, agp, {}, cases, skipped)

    core_names = set()
    for stem, bos, eos, convs, extra in CORE:
        core_names.add(stem)
        source = (tdir / f"{stem}.jinja").read_text(encoding="utf-8")
        tag = stem + "".join(f"/{k}={v}" for k, v in extra.items() if k != "date_string")
        for conv in convs:
            agps = (True, False) if conv in ("multi_turn", "tools_call", "tools_single_call") else (True,)
            for agp in agps:
                render_case(f"{tag}/{conv}/agp={agp}", source, bos, eos, conv, agp, extra, cases, skipped)

    for path in [] if args.no_sweep else sorted(tdir.glob("*.jinja")):
        if path.stem in core_names:
            continue
        source = path.read_text(encoding="utf-8")
        for conv in SWEEP:
            render_case(f"sweep/{path.stem}/{conv}", source, *SWEEP_TOKENS, conv, True, DATE, cases, skipped)

    for name, source, messages, extra in SYNTHETIC:
        CONVERSATIONS[f"synthetic:{name}"] = (messages, None)
        render_case(f"synthetic/{name}", source, "<s>", "</s>", f"synthetic:{name}", True, extra, cases, skipped)

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(cases, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    templates = {c["template"] for c in cases}
    print(f"wrote {len(cases)} cases over {len(templates)} templates to {out}", file=sys.stderr)
    for s in skipped:
        print(f"skipped {s}", file=sys.stderr)


if __name__ == "__main__":
    main()
