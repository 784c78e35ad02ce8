#!/usr/bin/env python3
"""Record reference fixtures for embeddings and fill-in-the-middle from llama.cpp's llama-server
(built by scripts/reference/build.sh), on the real Qwen2.5-Coder-0.5B-Instruct GGUF.

Writes, under tests/fixtures/:

  embeddings_qwen.json  /v1/embeddings of fixed inputs (strings and token ids), from
                        `llama-server --embeddings --pooling mean`: unit-length vectors (rounded
                        to 7 significant digits) and the token count of each input
  fim_qwen.json         greedy /infill outputs (prefix, suffix, input_extra, prompt) with the
                        prompt's token count and text as llama-server laid it out, and greedy
                        /v1/completions of the same prefix/suffix given as the raw
                        prefix-suffix-middle prompt `<|fim_prefix|>P<|fim_suffix|>S<|fim_middle|>`

The server runs with the settings of record.py (2 threads, batch 2048, micro-batch 512, flash
attention auto), one slot of 4096 tokens (llama-server's /infill budgets input_extra against the
slot's context). Stdlib only. Usage:

  python3 scripts/reference/record_fim_embed.py [--server PATH] [--qwen GGUF]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import record  # noqa: E402  (the reference helpers: Server, sha256, dump_fixture, ...)

N_CTX = 4096
N_PREDICT = 48

EMBED_INPUTS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "def add(a, b):\n    return a + b\n",
    "Ünïcödé, 日本語のテキスト, and emoji 🦀🚀 in one input.",
    "x",
    " ".join(["Retrieval-augmented generation splits documents into chunks, embeds each chunk, "
              "and finds the chunks nearest to a question by cosine similarity."] * 8),
]

EXTRA = [
    {"filename": "utils/math.py", "text": "def clamp(x, lo, hi):\n    return max(lo, min(x, hi))\n"},
    {"filename": "README.md", "text": "# Geometry\n\nHelpers for points and vectors.\n"},
]

FIM_CASES = [
    {"input_prefix": "def fibonacci(n):\n    ", "input_suffix": "\n    return fibonacci(n - 1) + fibonacci(n - 2)\n"},
    {"input_prefix": "function sum(values) {\n  let total = 0;\n  ", "input_suffix": "\n  return total;\n}\n"},
    {"input_prefix": "fn main() {\n    let names = vec![\"a\", \"b\"];\n    ", "input_suffix": "\n}\n"},
    {"input_prefix": "import math\n\nclass Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n\n    def distance(self, other):\n        ",
     "input_suffix": "\n\n    def __repr__(self):\n        return f\"Point({self.x}, {self.y})\"\n",
     "input_extra": EXTRA},
    {"input_prefix": "# Grüße: print a greeting\ndef greet(name):\n", "input_suffix": "\n\ngreet(\"Zoë\")\n",
     "prompt": "    print("},
    {"input_prefix": "SELECT name, ", "input_suffix": " FROM users WHERE age > 30;"},
]


def rounded(v):
    return [float(f"{x:.7g}") for x in v]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", help="llama-server binary (default: the one build.sh made)")
    m = record.MODELS["qwen"]
    ap.add_argument("--qwen", default=os.environ.get(m["env"], m["default"]), help=f"{m['name']} GGUF")
    args = ap.parse_args()
    binary = record.reference_server(args.server)
    record.check_model("qwen", args.qwen)
    common = {
        "model": "qwen",
        "model_name": m["name"],
        "sha256": m["sha256"],
        "llama_cpp_python": record.LLAMA_CPP_PYTHON_VERSION,
        "server_version": record.server_version(binary),
    }
    base_args = record.server_args

    # Embeddings.
    record.server_args = lambda path, port: base_args(path, port) + [
        "-c", str(N_CTX), "--embeddings", "--pooling", "mean"]
    srv = record.Server(binary, args.qwen, os.path.join(record.CACHE, "llama-server-embed.log"))
    try:
        t0 = time.time()
        items = []
        for text in EMBED_INPUTS:
            tokens = srv.post("/tokenize", {"content": text, "add_special": True, "parse_special": True})["tokens"]
            out = srv.post("/v1/embeddings", {"input": text, "model": "qwen"})
            items.append({"input": text, "n_tokens": len(tokens),
                          "prompt_tokens": out["usage"]["prompt_tokens"],
                          "embedding": rounded(out["data"][0]["embedding"])})
        ids = srv.post("/tokenize", {"content": EMBED_INPUTS[1], "add_special": True})["tokens"]
        out = srv.post("/v1/embeddings", {"input": ids, "model": "qwen"})
        items.append({"input": ids, "n_tokens": len(ids), "prompt_tokens": out["usage"]["prompt_tokens"],
                      "embedding": rounded(out["data"][0]["embedding"])})
        header = dict(common)
        header["settings"] = {"server_command": "llama-server " + " ".join(record.server_args("MODEL.gguf", "PORT")),
                              "endpoint": "/v1/embeddings (unit length, embd_normalize 2)"}
        size = record.dump_fixture(os.path.join(record.FIXTURES, "embeddings_qwen.json"), header, "cases", items)
        print(f"embeddings: {len(items)} inputs, {size} bytes, {time.time() - t0:.1f}s", file=sys.stderr)
    finally:
        srv.close()

    # Fill-in-the-middle.
    record.server_args = lambda path, port: base_args(path, port) + ["-c", str(N_CTX)]
    srv = record.Server(binary, args.qwen, os.path.join(record.CACHE, "llama-server-fim.log"))
    try:
        t0 = time.time()
        items = []
        for case in FIM_CASES:
            body = {**case, "n_predict": N_PREDICT, "temperature": 0, "cache_prompt": False, "seed": 0}
            out = srv.post("/infill", body)
            raw = "<|fim_prefix|>" + case["input_prefix"] + "<|fim_suffix|>" + case["input_suffix"] + "<|fim_middle|>"
            plain = srv.post("/v1/completions", {"prompt": raw, "max_tokens": N_PREDICT, "temperature": 0,
                                                 "cache_prompt": False, "seed": 0, "model": "qwen"})
            items.append({**case, "infill": {"content": out["content"], "tokens_evaluated": out["tokens_evaluated"],
                                             "prompt": out.get("prompt"), "stop_type": out.get("stop_type")},
                          "completion": {"text": plain["choices"][0]["text"],
                                         "prompt_tokens": plain["usage"]["prompt_tokens"],
                                         "finish_reason": plain["choices"][0]["finish_reason"]}})
        header = dict(common)
        header["settings"] = {"server_command": "llama-server " + " ".join(record.server_args("MODEL.gguf", "PORT")),
                              "request": {"n_predict": N_PREDICT, "temperature": 0, "cache_prompt": False}}
        size = record.dump_fixture(os.path.join(record.FIXTURES, "fim_qwen.json"), header, "cases", items)
        print(f"fim: {len(items)} cases, {size} bytes, {time.time() - t0:.1f}s", file=sys.stderr)
    finally:
        srv.close()


if __name__ == "__main__":
    main()
