"""Structured output cost: decode tokens/s with a JSON-schema grammar vs without, and the delay a
schema adds before the first token (small and large schema), on one Minerva server.

Streamed /v1/chat/completions, greedy, `cache_prompt: false` (every request computes its prompt,
so the first-token times compare). Decode rate of a request = (tokens - 1) / (last token time -
first token time). Medians over --runs runs of each case, interleaved (case A, B, C, A, B, C...).

    python3 scripts/bench/grammar.py --minerva target/release/minerva \
        --model ~/.local/share/minerva/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --runs 5
    python3 scripts/bench/grammar.py --url http://127.0.0.1:11434 --model-id qwen2.5-coder:0.5b

Stdlib only.
"""
import argparse
import json
import os
import statistics
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from servers import Server, free_port  # noqa: E402

PROMPT = "List twelve people with their name, age and city, as JSON."
PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 16},
    "age": {"type": "integer", "minimum": 0, "maximum": 120},
    "city": {"type": "string", "maxLength": 16}}, "required": ["name", "age", "city"],
    "additionalProperties": False}
# A long reply: twelve objects.
LONG = {"type": "object", "properties": {"people": {"type": "array", "items": PERSON, "minItems": 12,
                                                     "maxItems": 12}}, "required": ["people"]}
SMALL = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
# A large schema: 150 optional properties with enums, nested definitions.
LARGE = {"type": "object", "$defs": {"person": PERSON}, "properties": {
    **{f"field_{i}": {"type": "string", "enum": [f"v{i}_{j}" for j in range(8)]} for i in range(150)},
    "owner": {"$ref": "#/$defs/person"},
    "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]{2,8}$"}, "maxItems": 5}},
    "required": ["owner"]}


def stream(base, model, body):
    """(seconds to the first token, decode tokens/s, tokens, finish_reason) of one streamed request."""
    payload = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": True,
               "temperature": 0, "cache_prompt": False, **body}
    req = urllib.request.Request(base + "/v1/chat/completions", json.dumps(payload).encode(),
                                 {"Content-Type": "application/json"})
    start = time.perf_counter()
    first = last = None
    n = 0
    finish = None
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            line = line.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            choice = chunk["choices"][0] if chunk["choices"] else {}
            if choice.get("delta", {}).get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
                n += 1
            finish = choice.get("finish_reason") or finish
    rate = (n - 1) / (last - first) if n > 1 and last > first else float("nan")
    return (first - start if first else float("nan")), rate, n, finish


def schema(s):
    return {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": s}}}


CASES = [
    # (name, body, what is measured)
    ("free", {"max_tokens": 200, "ignore_eos": True}, "decode"),
    ("schema-long", {**schema(LONG), "max_tokens": 400}, "decode"),
    ("ttft-none", {"max_tokens": 1}, "ttft"),
    ("ttft-small", {**schema(SMALL), "max_tokens": 1}, "ttft"),
    ("ttft-large", {**schema(LARGE), "max_tokens": 1}, "ttft"),
]


def run(base, model, runs):
    results = {name: [] for name, _, _ in CASES}
    stream(base, model, {"max_tokens": 4})  # warm-up
    for i in range(runs):
        for name, body, _ in CASES:
            results[name].append(stream(base, model, body))
            ttft, rate, n, finish = results[name][-1]
            print(f"run {i + 1} {name:12s} first token {ttft * 1e3:8.1f} ms  decode {rate:6.1f} tok/s"
                  f"  {n} tokens  {finish}", flush=True)
    print("\nmedians:")
    summary = {}
    for name, _, what in CASES:
        ttft = statistics.median(r[0] for r in results[name])
        rate = statistics.median(r[1] for r in results[name])
        summary[name] = {"first_token_ms": ttft * 1e3, "decode_tok_s": rate}
        print(f"  {name:12s} first token {ttft * 1e3:8.1f} ms  decode {rate:6.1f} tok/s")
    free, constrained = summary["free"]["decode_tok_s"], summary["schema-long"]["decode_tok_s"]
    print(f"\nconstrained / free decode: {constrained / free:.2f}")
    base_ttft = summary["ttft-none"]["first_token_ms"]
    for name in ("ttft-small", "ttft-large"):
        print(f"first-token delay added by {name[5:]} schema: {summary[name]['first_token_ms'] - base_ttft:+.1f} ms")
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minerva", help="the minerva binary (started with --model)")
    ap.add_argument("--model", help="GGUF file to serve")
    ap.add_argument("--url", help="an already running server instead")
    ap.add_argument("--model-id", help="model id to request (default: what the server lists first)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--json", help="write the medians here")
    args = ap.parse_args()
    if args.url:
        summary = run_on(args.url, args)
    else:
        if not (args.minerva and args.model):
            sys.exit("give --url, or --minerva and --model")
        port = free_port()
        cmd = [args.minerva, "serve", "--model", args.model, "--port", str(port)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        with Server("minerva", cmd, f"http://127.0.0.1:{port}") as s:
            summary = run_on(s.base, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)


def run_on(base, args):
    model = args.model_id
    if not model:
        with urllib.request.urlopen(base + "/v1/models") as r:
            model = json.load(r)["data"][0]["id"]
    return run(base, model, args.runs)


if __name__ == "__main__":
    main()
