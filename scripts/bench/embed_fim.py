"""Embeddings throughput and fill-in-the-middle keystroke latency, Minerva against the reference
llama-server, in interleaved rounds (each round starts one server, measures, stops it).

embed: 256 short inputs (8-20 tokens each) in one `/v1/embeddings` request; inputs/s.
    llama-server runs with `--embeddings --pooling mean` (its default slots), Minerva as it is.
    (In embeddings mode llama-server shrinks its batch to its micro-batch, 512, which cuts
    `/infill` prompts to 520 tokens: FIM is measured on a llama-server started without it.)
fim:   one ~1,500-token Python file, the cursor ~300 tokens before its end (llama-server's /infill
    layout keeps the last 1,536 tokens of the prefix: a longer prefix loses its start, and with
    it the prompt cache, at every keystroke unless KV can be shifted); each request sends
    the text before the cursor as the prefix and the text after it as the suffix to `/infill`
    (`n_predict` 8, streamed, greedy), then the cursor moves 3 characters forward, as if the
    user typed what is there. Time to first token of the first request (cold) and the median of
    the following ones (warm), and their ratio.

    python3 scripts/bench/embed_fim.py --minerva target/debug/minerva \
        --llama-server ~/.cache/minerva/reference/build-0.3.36/bin/llama-server \
        --model ~/.local/share/minerva/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf --rounds 3

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

SUBJECTS = ["The cat", "A distributed database", "Rust's borrow checker", "The river", "Our quarterly report",
            "A small language model", "The old lighthouse", "This recipe"]
VERBS = ["explains", "shows", "hides", "changes", "describes", "improves", "questions", "follows"]
OBJECTS = ["the meaning of caching", "why tests matter", "a quiet morning by the sea",
           "how vectors are compared", "the cost of a cache miss", "three ways to sort a list"]


def inputs(n=256):
    out = []
    for i in range(n):
        s = f"{SUBJECTS[i % len(SUBJECTS)]} {VERBS[(i // 3) % len(VERBS)]} {OBJECTS[(i // 7) % len(OBJECTS)]} (note {i})."
        out.append(s)
    return out


def source_file():
    parts = []
    for i in range(36):
        parts.append(f"def transform_{i}(values, factor={i + 1}):\n"
                     f"    \"\"\"Scale every value by {i + 1} and drop the negative ones.\"\"\"\n"
                     f"    return [v * factor for v in values if v >= 0]\n\n")
    return "".join(parts)


def post(base, path, body, timeout=900):
    req = urllib.request.Request(base + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def ttft(base, body):
    req = urllib.request.Request(base + "/infill", json.dumps({**body, "stream": True}).encode(),
                                 {"Content-Type": "application/json"})
    start = time.perf_counter()
    first = None
    with urllib.request.urlopen(req, timeout=900) as r:
        for line in r:
            line = line.strip()
            if line.startswith(b"data: ") and first is None:
                obj = json.loads(line[6:])
                if obj.get("content"):
                    first = time.perf_counter() - start
    return first


def measure_embed(base, model):
    texts = inputs()
    post(base, "/v1/embeddings", {"model": model, "input": texts[:4]})  # warm-up (creates the context)
    start = time.perf_counter()
    out = post(base, "/v1/embeddings", {"model": model, "input": texts})
    elapsed = time.perf_counter() - start
    assert len(out["data"]) == len(texts)
    return len(texts) / elapsed


def measure_fim(base, model, steps):
    text = source_file()
    cursor = int(len(text) * 0.8)
    times = []
    for i in range(steps):
        body = {"input_prefix": text[:cursor], "input_suffix": text[cursor:], "n_predict": 8,
                "temperature": 0, "model": model}
        times.append(ttft(base, body))
        cursor += 3
    return times[0], statistics.median(times[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minerva", required=True)
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=10, help="FIM requests per round")
    ap.add_argument("--only", choices=["embed", "fim"], help="measure only this")
    args = ap.parse_args()

    ref = [args.llama_server, "-t", str(args.threads), "-tb", str(args.threads), "--flash-attn", "auto",
           "--no-webui", "-c", str(args.ctx)]
    # (name, command after the port, what it measures)
    runs = [
        ("minerva", None, ("embed", "fim")),
        ("llama-server", ref + ["--embeddings", "--pooling", "mean"], ("embed",)),
        ("llama-server", ref, ("fim",)),
        ("llama-server --cache-reuse 256", ref + ["--cache-reuse", "256"], ("fim",)),
    ]
    if args.only:
        runs = [(n, c, tuple(w for w in what if w == args.only)) for n, c, what in runs]
        runs = [r for r in runs if r[2]]
    results = {}
    for rnd in range(args.rounds):
        for name, cmd, what in runs:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            if cmd is None:
                full = [args.minerva, "serve", "--model", args.model, "--port", str(port), "--ctx-size",
                        str(args.ctx), "--threads", str(args.threads)]
            else:
                full = cmd[:1] + ["-m", args.model, "--host", "127.0.0.1", "--port", str(port)] + cmd[1:]
            env = {**os.environ, "MINERVA_MODELS": f"/tmp/minerva-bench-store-{os.getpid()}"}
            r = results.setdefault(name, {})
            with Server(name, full, base, env=env):
                model = json.loads(urllib.request.urlopen(base + "/v1/models").read())["data"][0]["id"]
                line = f"round {rnd + 1} {name:31}"
                if "embed" in what:
                    e = measure_embed(base, model)
                    r.setdefault("embed", []).append(e)
                    line += f" embed {e:6.1f} inputs/s"
                if "fim" in what:
                    cold, warm = measure_fim(base, model, args.steps)
                    r.setdefault("fim_cold", []).append(cold)
                    r.setdefault("fim_warm", []).append(warm)
                    line += f" fim ttft cold {cold * 1000:6.0f} ms warm {warm * 1000:6.0f} ms ({warm / cold:.2f}x)"
            print(line, flush=True)
    med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in results.items()}
    m, ref_med = med["minerva"], med["llama-server"]
    print("\nmedians over rounds:")
    for n, r in med.items():
        line = f"  {n:31}"
        if "embed" in r:
            line += f" embed {r['embed']:6.1f} inputs/s"
        if "fim_cold" in r:
            line += (f" fim ttft cold {r['fim_cold'] * 1000:6.0f} ms warm {r['fim_warm'] * 1000:6.0f} ms"
                     f" warm/cold {r['fim_warm'] / r['fim_cold']:.2f}")
        print(line)
    if "embed" in m:
        print(f"  embeddings throughput minerva / llama-server: {m['embed'] / ref_med['embed']:.2f}x")
    if "fim_warm" in m:
        print(f"  FIM warm TTFT minerva / llama-server: {m['fim_warm'] / ref_med['fim_warm']:.2f}x")


if __name__ == "__main__":
    main()
