"""Per-token overhead of each API dialect against /v1/chat/completions: the same greedy chat,
streamed, 200 tokens (`ignore_eos`), through OpenAI chat, OpenAI Responses, Anthropic Messages
and Ollama chat,
interleaved `--runs` times on one server; the decode rate of a request is
(chunks - 1) / (last chunk time - first chunk time), one chunk per token. Medians reported,
with each route's ratio to OpenAI chat.

    python3 scripts/bench/dialects.py --minerva target/debug/minerva \
        --model ~/.local/share/minerva/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --runs 5

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

MESSAGES = [{"role": "user", "content": "Write a long story about the sea."}]
N = 200


def rate(base, path, body, is_token):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    first = last = None
    n = 0
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            line = line.strip()
            if not line or not is_token(line):
                continue
            now = time.perf_counter()
            first = first or now
            last = now
            n += 1
    return (n - 1) / (last - first) if n > 1 and last > first else float("nan")


def sse_data(pred):
    def check(line):
        if not line.startswith(b"data: ") or line == b"data: [DONE]":
            return False
        return pred(json.loads(line[6:]))
    return check


ROUTES = {
    "openai": ("/v1/chat/completions",
               lambda m: {"model": m, "messages": MESSAGES, "stream": True, "temperature": 0,
                          "max_tokens": N, "ignore_eos": True},
               sse_data(lambda c: bool(c.get("choices") and c["choices"][0]["delta"].get("content")))),
    "responses": ("/v1/responses",
                  lambda m: {"model": m, "input": MESSAGES[0]["content"], "stream": True, "temperature": 0,
                             "max_output_tokens": N, "ignore_eos": True},
                  sse_data(lambda c: c.get("type") == "response.output_text.delta")),
    "anthropic": ("/v1/messages",
                  lambda m: {"model": m, "messages": MESSAGES, "stream": True, "temperature": 0,
                             "max_tokens": N},
                  sse_data(lambda c: c.get("type") == "content_block_delta")),
    "ollama": ("/api/chat",
               lambda m: {"model": m, "messages": MESSAGES, "stream": True,
                          "options": {"temperature": 0, "num_predict": N}},
               lambda line: bool(json.loads(line).get("message", {}).get("content"))),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--minerva", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--model-id", default="qwen2.5-coder:0.5b")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [args.minerva, "serve", "--model", args.model, "--port", str(port), "--parallel", "1"]
    results = {name: [] for name in ROUTES}
    with Server("minerva", cmd, base, log_path="/tmp/bench-dialects.log"):
        path, body, is_token = ROUTES["openai"]
        rate(base, path, body(args.model_id), is_token)  # warm-up
        for i in range(args.runs):
            for name, (path, body, is_token) in ROUTES.items():
                r = rate(base, path, body(args.model_id), is_token)
                results[name].append(r)
                print(f"run {i + 1} {name:10s} {r:6.1f} tok/s", flush=True)
    base_rate = statistics.median(results["openai"])
    print("\nmedians:")
    for name, rates in results.items():
        m = statistics.median(rates)
        print(f"  {name:10s} {m:6.1f} tok/s  {m / base_rate:.3f}x of openai chat")


if __name__ == "__main__":
    main()
