#!/usr/bin/env python3
"""Prompt-processing and generation speed of Minerva and of the reference llama-server, measured
the same way in the same run: a 512-token prompt (token ids, so both see the same tokens), 128
generated tokens, greedy, streamed through /v1/completions; one warm-up run, then the median of
N runs per server. The servers run one at a time with the same threads, context, batch and
micro-batch sizes and flash attention auto (both defaults; on for the CPU).

  python3 scripts/bench/bench.py --minerva target/release/minerva \
      --llama-server ~/.cache/minerva/reference/build-0.3.36/bin/llama-server --model MODEL.gguf

Speeds are measured at the client: prompt tokens/s = 512 / time to first token; generation
tokens/s = (tokens - 1) / (last token - first token). Stdlib only.
"""
import argparse
import json
import os
import statistics
import sys
import time
import urllib.request

from servers import Server, free_port

PROMPT_SEED = (
    "The history of computing is a story of abstraction. Early machines were programmed by "
    "rewiring; later, stored programs let the same hardware run many tasks. Assemblers gave "
    "names to instructions, compilers gave structure to programs, and operating systems gave "
    "every program the illusion of a whole machine. "
)


def post(url, body, stream=False):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    return urllib.request.urlopen(req, timeout=600)


def one_run(base, model_id, prompt_tokens, n_gen):
    body = {
        "model": model_id,
        "prompt": prompt_tokens,
        "max_tokens": n_gen,
        "temperature": 0,
        "stream": True,
        "cache_prompt": False,
    }
    t0 = time.perf_counter()
    arrivals = []
    with post(base + "/v1/completions", body) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("choices") and chunk["choices"][0].get("text"):
                arrivals.append(time.perf_counter())
    if len(arrivals) < 2:
        sys.exit("too few tokens streamed")
    pp = len(prompt_tokens) / (arrivals[0] - t0)
    tg = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])
    return pp, tg, len(arrivals)


def report(name, results):
    pp = statistics.median(r[0] for r in results)
    tg = statistics.median(r[1] for r in results)
    chunks = sorted({r[2] for r in results})
    spread_pp = f"{min(r[0] for r in results):.1f}-{max(r[0] for r in results):.1f}"
    spread_tg = f"{min(r[1] for r in results):.2f}-{max(r[1] for r in results):.2f}"
    print(f"{name:13s} pp512 {pp:8.1f} tok/s ({spread_pp})   tg128 {tg:6.2f} tok/s ({spread_tg})   "
          f"(runs {len(results)}, text chunks {chunks})", flush=True)
    return pp, tg


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minerva", required=True)
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--gen", type=int, default=128)
    args = ap.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    t = str(args.threads)
    ref_cmd = [args.llama_server, "-m", args.model, "--host", "127.0.0.1", "--port", str(port),
               "-c", str(args.ctx), "-t", t, "-tb", t, "-b", "2048", "-ub", "512", "-np", "1",
               "--flash-attn", "auto", "--cache-ram", "0", "--no-webui"]
    mv_cmd = [args.minerva, "serve", "--model", args.model, "--port", str(port),
              "--ctx-size", str(args.ctx), "--threads", t]
    print(f"model {args.model}, threads {t}, ctx {args.ctx}; {args.runs} rounds, each starting "
          "both servers in turn (one warm-up request, then one measured request)")
    with Server("llama-server", ref_cmd, base) as srv:
        text = PROMPT_SEED * 40
        prompt = json.load(post(base + "/tokenize", {"content": text}))["tokens"][:512]
    with Server("minerva", mv_cmd, base):
        model_id = json.load(urllib.request.urlopen(base + "/v1/models"))["data"][0]["id"]
    results = {"llama-server": [], "minerva": []}
    # Interleaved rounds: a noisy machine's drift hits both servers alike.
    for _ in range(args.runs):
        for name, cmd, mid in (("llama-server", ref_cmd, "x"), ("minerva", mv_cmd, model_id)):
            with Server(name, cmd, base):
                one_run(base, mid, prompt, args.gen)
                results[name].append(one_run(base, mid, prompt, args.gen))
    ref_pp, ref_tg = report("llama-server", results["llama-server"])
    mv_pp, mv_tg = report("minerva", results["minerva"])
    print(f"ratio minerva/llama-server: pp {mv_pp / ref_pp:.3f}, tg {mv_tg / ref_tg:.3f}")


if __name__ == "__main__":
    main()
