#!/usr/bin/env python3
"""Record reference fixtures from llama.cpp's llama-server (built by scripts/reference/build.sh).

For each real model (Qwen2.5-Coder-0.5B-Instruct Q4_K_M and Gemma 3 270M) this starts the
reference server on a free loopback port and writes, under tests/fixtures/:

  tokenize_{model}.json   token ids of every string in tokenize_corpus.json, for
                          {add_special: false, parse_special: true} (llama-server's /tokenize
                          defaults) and {add_special: true, parse_special: false}
  greedy_{model}.json     greedy (temperature 0) completions of fixed raw prompts, cold cache,
                          with the prompt token ids and, per generated token, its id, bytes,
                          natural-log probability and the top 5 alternatives, all computed from
                          the raw logits (post_sampling_probs: false)

Stdlib only. Usage (see scripts/reference/README.md):

  python3 scripts/reference/record.py [--server PATH] [--qwen GGUF] [--gemma GGUF] [--only qwen|gemma]
"""
import argparse
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
LLAMA_CPP_PYTHON_VERSION = os.environ.get("LLAMA_CPP_PYTHON_VERSION", "0.3.36")
CACHE = os.path.join(os.environ.get("MINERVA_CACHE", os.path.expanduser("~/.cache/minerva")), "reference")

MODELS = {
    "qwen": {
        "env": "MINERVA_QWEN_GGUF",
        "default": "/tmp/devmodels/qwen.gguf",
        "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "name": "Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
    },
    "gemma": {
        "env": "MINERVA_GEMMA_GGUF",
        "default": "/tmp/devmodels/gemma.gguf",
        "sha256": "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        "name": "Gemma 3 270M (base) Q4_K_M",
    },
}

# The arithmetic-relevant settings; the Rust-side parity tests must use the same ones.
SETTINGS = {
    "ctx": 2048,
    "threads": 2,
    "threads_batch": 2,
    "batch": 2048,
    "ubatch": 512,
    "parallel": 1,
    "flash_attn": "auto",  # llama-server's default and Minerva's: on for the CPU
    "kv_cache_type": "f16",
    "seed": 0,
}

# llama-server defaults that also change the arithmetic and differ from llama.cpp's C API
# defaults (llama_context_default_params, which llama-cpp-2 starts from): swa_full is true
# there. Set these explicitly on the Rust side.
SERVER_DEFAULTS = {
    "swa_full": False,  # Gemma 3: SWA layers get a 1024-cell cache (window 512 + ubatch), not n_ctx
    "kv_unified": False,
    "warmup": True,
    "mmap": True,
    "cpu_repack": True,
    "llamafile_sgemm": True,
}


def server_args(model_path, port):
    s = SETTINGS
    return [
        "-m", model_path,
        "--host", "127.0.0.1", "--port", str(port),
        "-c", str(s["ctx"]),
        "-t", str(s["threads"]), "-tb", str(s["threads_batch"]),
        "-b", str(s["batch"]), "-ub", str(s["ubatch"]),
        "-np", str(s["parallel"]),
        "--flash-attn", s["flash_attn"],
        "-ctk", s["kv_cache_type"], "-ctv", s["kv_cache_type"],
        "--seed", str(s["seed"]),
        # No prompt cache in RAM: every request starts cold (we also send cache_prompt: false).
        "--cache-ram", "0",
        "--no-webui",
    ]


N_PREDICT = 48
N_PROBS = 5

CHATML_SYSTEM = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"


def chatml(user, system=CHATML_SYSTEM, history=()):
    out = system
    for u, a in history:
        out += f"<|im_start|>user\n{u}<|im_end|>\n<|im_start|>assistant\n{a}<|im_end|>\n"
    return out + f"<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


PROMPTS = {
    "qwen": [
        chatml("Write a haiku about Rust."),
        chatml("What is the capital of France? Answer in one sentence."),
        chatml("Write a Python function that checks whether a number is prime."),
        chatml("用一句话介绍一下你自己。"),
        chatml("List three primary colors.",
               system="<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. "
                      "You are a helpful assistant.<|im_end|>\n"),
        chatml("And what is 3 times that?", history=[("What is 2 + 2?", "2 + 2 = 4.")]),
        "def quicksort(arr):\n",
        "Here is a list of five fruits:\n1.",
        "Once upon a time, in a small village by the sea,",
        "中国的首都是",
        "Question: What is 17 * 23?\nAnswer:",
        "fn fibonacci(n: u64) -> u64 {\n",
    ],
    "gemma": [
        "The capital of France is",
        "Once upon a time, there was a little robot who",
        "def fibonacci(n):\n",
        "Here is a list of colors:\n1. Red\n2.",
        "中国的首都是",
        "2 + 2 = 4\n3 + 5 =",
        "<start_of_turn>user\nWhat is the largest planet in our solar system?<end_of_turn>\n"
        "<start_of_turn>model\n",
        "English: Hello, how are you?\nFrench:",
    ],
}

TOKENIZE_VARIANTS = [
    {"add_special": False, "parse_special": True},
    {"add_special": True, "parse_special": False},
]


# --------------------------------------------------------------------------------------------
# Minimal GGUF metadata reader: token texts and types, to know each token's exact bytes
# (llama.cpp's token_to_piece with special=false). Needed because llama-server drops the
# per-token probabilities of steps that end inside a UTF-8 sequence; we re-align them.

def read_gguf_metadata(path, wanted):
    scalar = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
              10: "<Q", 11: "<q", 12: "<d"}
    out = {}
    with open(path, "rb") as f:
        def rd(fmt):
            n = struct.calcsize(fmt)
            return struct.unpack(fmt, f.read(n))[0]

        def rstr():
            return f.read(rd("<Q")).decode("utf-8", errors="surrogateescape")

        def rval(t):
            if t in scalar:
                return rd(scalar[t])
            if t == 8:
                return rstr()
            if t == 9:
                et, n = rd("<I"), rd("<Q")
                if et in scalar:
                    fmt = scalar[et]
                    size = struct.calcsize(fmt)
                    return list(struct.unpack("<" + fmt[1] * n, f.read(size * n)))
                return [rval(et) for _ in range(n)]
            raise ValueError(f"unknown GGUF value type {t}")

        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        rd("<I")  # version
        rd("<Q")  # tensor count
        for _ in range(rd("<Q")):
            key = rstr()
            t = rd("<I")
            if key in wanted or t != 9:
                out[key] = rval(t)
            else:
                rval(t)  # skip (e.g. merges)
    return out


def _gpt2_unicode_to_byte():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class Vocab:
    NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

    def __init__(self, path):
        md = read_gguf_metadata(path, {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type"})
        self.model = md["tokenizer.ggml.model"]
        self.tokens = md["tokenizer.ggml.tokens"]
        self.types = md.get("tokenizer.ggml.token_type") or [1] * len(self.tokens)
        self.bos = md.get("tokenizer.ggml.bos_token_id")
        self.eos = md.get("tokenizer.ggml.eos_token_id")
        self.add_bos = md.get("tokenizer.ggml.add_bos_token")
        self.pre = md.get("tokenizer.ggml.pre")
        self._u2b = _gpt2_unicode_to_byte()

    def piece(self, tok):
        """Bytes of llama_token_to_piece(tok, special=false), or None if not derivable."""
        text, typ = self.tokens[tok], self.types[tok]
        raw = text.encode("utf-8", errors="surrogateescape")
        if typ in (self.CONTROL, self.UNKNOWN, self.UNUSED):
            return b""  # suppressed like control tokens (special=false)
        if typ == self.USER_DEFINED:
            return raw
        if typ == self.BYTE:
            return bytes([int(text[3:5], 16)])
        if typ != self.NORMAL:
            return None
        if self.model == "gpt2":
            try:
                return bytes(self._u2b[ch] for ch in text)
            except KeyError:
                return raw
        if self.model == "llama":
            return raw.replace("\u2581".encode(), b" ")
        return None


def utf8_valid_prefix_len(b):
    """Port of llama-server's validate_utf8: length of b without a trailing incomplete sequence."""
    n = len(b)
    for i in range(1, min(4, n) + 1):
        c = b[n - i]
        if (c & 0xE0) == 0xC0:
            if i < 2:
                return n - i
        elif (c & 0xF0) == 0xE0:
            if i < 3:
                return n - i
        elif (c & 0xF8) == 0xF0:
            if i < 4:
                return n - i
    return n


# --------------------------------------------------------------------------------------------
# Server process

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, method, path, body=None, timeout=600):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read().decode("utf-8"))


class Server:
    def __init__(self, binary, model_path, log_path):
        self.port = free_port()
        self.args = server_args(model_path, self.port)
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([binary] + self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + 300
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode}; see {log_path}")
            try:
                http(self.port, "GET", "/health", timeout=5)
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.time() > deadline:
                    self.close()
                    raise RuntimeError(f"llama-server did not become healthy; see {log_path}")
                time.sleep(0.5)

    def get(self, path):
        return http(self.port, "GET", path)

    def post(self, path, body):
        return http(self.port, "POST", path, body)

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --------------------------------------------------------------------------------------------

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def reference_server(path=None):
    """`path`, or the llama-server build.sh made; exits when it is not there."""
    binary = path or os.path.join(CACHE, f"build-{LLAMA_CPP_PYTHON_VERSION}", "bin", "llama-server")
    if not os.access(binary, os.X_OK):
        sys.exit(f"no llama-server at {binary}; run scripts/reference/build.sh first")
    return binary


def check_model(key, path):
    """Exits unless `path` is the model `key` of MODELS (by its sha256)."""
    digest = sha256(path)
    if digest != MODELS[key]["sha256"]:
        sys.exit(f"{path}: sha256 {digest}, expected {MODELS[key]['sha256']}")


def llama_cpp_commit():
    head = os.path.join(CACHE, f"llama_cpp_python-{LLAMA_CPP_PYTHON_VERSION}", ".git", "modules",
                        "vendor", "llama.cpp", "HEAD")
    try:
        with open(head) as f:
            return f.read().strip()
    except OSError:
        return None


def server_version(binary):
    r = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60)
    return " ".join((r.stdout + r.stderr).split())


def dump_fixture(path, header, items_key, items):
    """JSON with one item per line: small, readable, diff-friendly."""
    head = json.dumps(header, ensure_ascii=False, indent=1)
    assert head.endswith("\n}")
    lines = [json.dumps(it, ensure_ascii=False, separators=(",", ":")) for it in items]
    body = head[:-2] + f',\n "{items_key}": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"
    json.loads(body)  # must stay valid JSON
    with open(path, "w", encoding="utf-8") as f:
        f.write(body)
    return os.path.getsize(path)


def record_tokenize(srv, corpus):
    cases = []
    for text in corpus:
        for v in TOKENIZE_VARIANTS:
            r = srv.post("/tokenize", {"content": text, **v})
            cases.append({"text": text, **v, "tokens": r["tokens"]})
    return cases


def align_steps(tokens, entries, vocab):
    """Map llama-server's completion_probabilities entries to generated tokens.

    The server adds an entry only when the text generated so far does not end inside a UTF-8
    sequence, so steps that end mid-character have none. Simulate that with the token bytes."""
    steps = []
    text = b""
    j = 0
    for tok in tokens:
        piece = vocab.piece(tok)
        if piece is None:
            raise RuntimeError(f"cannot derive bytes of token {tok}")
        text += piece
        complete = utf8_valid_prefix_len(text) == len(text)
        step = {"id": tok, "bytes": list(piece)}
        if complete:
            if j >= len(entries) or entries[j]["id"] != tok:
                raise RuntimeError(f"probabilities out of step at token {tok}: {entries[j:j + 1]}")
            e = entries[j]
            j += 1
            step["logprob"] = e["logprob"]
            step["top"] = [{"id": t["id"], "logprob": t["logprob"], "bytes": t["bytes"]}
                           for t in e["top_logprobs"]]
            if e["top_logprobs"] and e["top_logprobs"][0]["id"] == tok:
                if e["top_logprobs"][0]["bytes"] != list(piece):
                    raise RuntimeError(f"bytes of token {tok} disagree with the server's")
        else:
            # The server reports no probabilities for a step that ends mid-character.
            step["logprob"] = None
            step["top"] = None
        steps.append(step)
    if j != len(entries):
        raise RuntimeError(f"{len(entries) - j} probability entries left over")
    return steps


def record_greedy(srv, prompts, vocab):
    out = []
    gen_settings = None
    for prompt in prompts:
        ptoks = srv.post("/tokenize", {"content": prompt, "add_special": True, "parse_special": True})["tokens"]
        r = srv.post("/completion", {
            "prompt": prompt,
            "n_predict": N_PREDICT,
            "temperature": 0.0,
            "cache_prompt": False,
            "n_probs": N_PROBS,
            "post_sampling_probs": False,
            "return_tokens": True,
            "seed": SETTINGS["seed"],
            "stream": False,
        })
        if r["tokens_evaluated"] != len(ptoks):
            raise RuntimeError(f"prompt token count {r['tokens_evaluated']} != /tokenize's {len(ptoks)}")
        steps = align_steps(r["tokens"], r.get("completion_probabilities", []), vocab)
        for s in steps:
            if s["top"] and s["top"][0]["id"] != s["id"]:
                raise RuntimeError(f"greedy step chose {s['id']}, not the top token {s['top'][0]['id']}")
        gen = b"".join(bytes(s["bytes"]) for s in steps).decode("utf-8", errors="replace")
        out.append({
            "prompt": prompt,
            "prompt_tokens": ptoks,
            "n_prompt_tokens": len(ptoks),
            "n_predict": N_PREDICT,
            "content": r["content"],
            "text": gen,
            "stop": {"eos": "eos", "limit": "length"}.get(r["stop_type"], r["stop_type"]),
            "tokens": r["tokens"],
            "steps": steps,
        })
        if gen_settings is None:
            gen_settings = r.get("generation_settings", {})
    return out, gen_settings


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", help="llama-server binary (default: the one build.sh made)")
    for name, m in MODELS.items():
        ap.add_argument(f"--{name}", default=os.environ.get(m["env"], m["default"]), help=f"{m['name']} GGUF")
    ap.add_argument("--only", choices=sorted(MODELS), action="append", help="record only this model")
    args = ap.parse_args()

    binary = args.server or os.path.join(CACHE, f"build-{LLAMA_CPP_PYTHON_VERSION}", "bin", "llama-server")
    if not os.access(binary, os.X_OK):
        sys.exit(f"no llama-server at {binary}; run scripts/reference/build.sh first")

    with open(os.path.join(FIXTURES, "tokenize_corpus.json"), encoding="utf-8") as f:
        corpus = json.load(f)

    version = server_version(binary)
    commit = llama_cpp_commit()
    os.makedirs(CACHE, exist_ok=True)

    for name in args.only or list(MODELS):
        m = MODELS[name]
        path = getattr(args, name)
        digest = sha256(path)
        if digest != m["sha256"]:
            sys.exit(f"{path}: sha256 {digest}, expected {m['sha256']}")
        vocab = Vocab(path)
        log_path = os.path.join(CACHE, f"llama-server-{name}.log")
        print(f"[{name}] starting llama-server (log: {log_path})", file=sys.stderr)
        srv = Server(binary, path, log_path)
        try:
            props = srv.get("/props")
            common = {
                "model": name,
                "model_name": m["name"],
                "sha256": m["sha256"],
                "llama_cpp": props.get("build_info"),
                "llama_cpp_commit": commit,
                "llama_cpp_python": LLAMA_CPP_PYTHON_VERSION,
                "server_version": version,
            }

            t0 = time.time()
            cases = record_tokenize(srv, corpus)
            size = dump_fixture(os.path.join(FIXTURES, f"tokenize_{name}.json"), common, "cases", cases)
            print(f"[{name}] tokenize: {len(cases)} cases, {size} bytes, {time.time() - t0:.1f}s", file=sys.stderr)

            t0 = time.time()
            results, gen = record_greedy(srv, PROMPTS[name], vocab)
            header = dict(common)
            header["settings"] = {
                **SETTINGS,
                **SERVER_DEFAULTS,
                "n_ctx_slot": props.get("default_generation_settings", {}).get("n_ctx"),
                "server_command": "llama-server " + " ".join(server_args("MODEL.gguf", "PORT")),
                "request": {"temperature": 0.0, "n_predict": N_PREDICT, "n_probs": N_PROBS,
                            "post_sampling_probs": False, "cache_prompt": False, "return_tokens": True,
                            "seed": SETTINGS["seed"]},
                "samplers": gen.get("samplers"),
                "add_bos_token": vocab.add_bos,
                "bos_token_id": vocab.bos,
                "eos_token_id": vocab.eos,
                "prompt_tokenization": "/tokenize with add_special=true, parse_special=true "
                                       "(what /completion does with a string prompt)",
                "logprobs": "natural log of softmax over the raw logits (pre-sampling), float32",
                "steps": "one per generated token; logprob/top are null where llama-server reports "
                         "none (the step ended inside a UTF-8 sequence); bytes = token_to_piece(special=false)",
            }
            size = dump_fixture(os.path.join(FIXTURES, f"greedy_{name}.json"), header, "results", results)
            print(f"[{name}] greedy: {len(results)} prompts, {size} bytes, {time.time() - t0:.1f}s", file=sys.stderr)
        finally:
            srv.close()


if __name__ == "__main__":
    main()
