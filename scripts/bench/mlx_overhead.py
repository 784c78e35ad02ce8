#!/usr/bin/env python3
"""Decode speed of the MLX backend through Minerva against mlx-lm on its own (the wrapper's
overhead; target: Minerva within 3%), and against llama.cpp on the GGUF of the same model.

Three systems, on the same prompts (raw text, no chat template; greedy; up to --tokens tokens):

  mlx_lm         mlx_lm.load + mlx_lm.stream_generate with a greedy sampler, in a fresh Python
                 process (--python) per round: what `mlx_lm generate` does
  minerva-mlx    `minerva serve --model HF_DIR` (the MLX backend: mlx-lm in Minerva's worker)
  minerva-llama  `minerva serve --model GGUF` (llama.cpp)

In interleaved rounds (each round starts each system, warms it up with one short generation,
runs every prompt once, stops it; the order rotates from round to round), so a noisy machine's
drift hits all alike. Minerva is asked through Ollama's /api/generate (`raw`, streamed,
`temperature` 0, `num_predict` N): its own timings come back as eval_count / eval_duration.

Two decode rates per generation:

  reported  what the system itself reports: mlx-lm's `generation_tps` (tokens / time since the
            first token) and Minerva's eval_count / eval_duration (the same definition, timed
            inside the worker for MLX and inside the engine for llama.cpp)
  client    (tokens - 1) / (last token - first token) as the caller sees them: stream_generate's
            yields for mlx_lm, the streamed chunks at the HTTP client for Minerva (so it includes
            the worker protocol, the server, detokenizing and HTTP)

The summary gives the median of each over all rounds and prompts, and the ratios
minerva-mlx / mlx_lm (1.00 = no overhead; 0.97 = 3% slower) and minerva-mlx / minerva-llama.
Generations that stop at an end-of-generation token before N tokens are counted at their length
and flagged; greedy runs of mlx_lm and minerva-mlx should give the same text (also reported).

  python3 scripts/bench/mlx_overhead.py --minerva target/release/minerva \\
      --python ~/.cache/minerva/venv-test/bin/python \\
      --hf-dir ~/.cache/minerva/fixtures/qwen2.5-coder-0.5b-hf \\
      --gguf ~/.local/share/minerva/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \\
      --rounds 5 --tokens 32 --json /tmp/mlx_overhead.json

The script is stdlib-only; the mlx_lm system runs this same file under --python (which must
import mlx_lm: `pip install mlx-lm 'mlx[cpu]'` on Linux).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from servers import Server, free_port

SYSTEMS = ("mlx_lm", "minerva-mlx", "minerva-llama")

# Raw continuations that run on for well over 32 tokens without an end-of-generation token.
PROMPTS = [
    "def quicksort(arr):\n",
    "import numpy as np\n\n\ndef normalize(v):\n",
    "The following is a detailed history of the Roman Empire, from its founding to its fall.\n\n",
    "// A singly linked list in C\n#include <stdlib.h>\n\nstruct node {\n",
]


# ---- the mlx_lm system: this file, run under --python with --child ----

def child(hf_dir, prompts, n_tokens):
    """Loads the model, warms up, generates each prompt; one JSON line per prompt on stdout."""
    from mlx_lm import load, stream_generate
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = load(hf_dir)
    sampler = make_sampler(temp=0.0)
    for _ in stream_generate(model, tokenizer, tokenizer.encode(prompts[0]), max_tokens=2, sampler=sampler):
        pass
    for prompt in prompts:
        ids = tokenizer.encode(prompt)
        times, tokens, last = [], [], None
        for r in stream_generate(model, tokenizer, ids, max_tokens=n_tokens, sampler=sampler):
            times.append(time.perf_counter())
            tokens.append(int(r.token))
            last = r
        eos = last.finish_reason == "stop"
        if eos:
            # stream_generate's last response carries the end-of-generation token, not a new one.
            tokens.pop()
            times.pop()
        print(json.dumps({
            "prompt_tokens": len(ids),
            "tokens": len(tokens),
            "reported": last.generation_tps,
            "prompt_tps": last.prompt_tps,
            "client": client_rate(times),
            "text": tokenizer.decode(tokens),
        }), flush=True)


def run_mlx_lm(args, log):
    cmd = [args.python, os.path.abspath(__file__), "--child", "--hf-dir", args.hf_dir,
           "--tokens", str(args.tokens), "--prompts-json", json.dumps(args.prompt_list)]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log or subprocess.DEVNULL, check=False)
    if out.returncode != 0:
        sys.exit(f"mlx_lm child exited with {out.returncode} (see --server-log)")
    return [json.loads(line) for line in out.stdout.decode().splitlines() if line.startswith("{")]


# ---- the Minerva systems ----

def client_rate(times):
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0


def generate(base, model, prompt, n_tokens):
    body = {"model": model, "prompt": prompt, "raw": True, "stream": True,
            "options": {"temperature": 0, "num_predict": n_tokens}}
    req = urllib.request.Request(base + "/api/generate", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    times, pieces, final = [], [], None
    with urllib.request.urlopen(req, timeout=3600) as r:
        for raw in r:
            line = raw.decode().strip()
            if not line:
                continue
            chunk = json.loads(line)
            if chunk.get("error"):
                sys.exit(f"{model}: {chunk['error']}")
            if chunk.get("response"):
                times.append(time.perf_counter())
                pieces.append(chunk["response"])
            if chunk.get("done"):
                final = chunk
    if final is None or not final.get("eval_duration"):
        sys.exit(f"{model}: no final chunk with eval_duration")
    return {
        "prompt_tokens": final["prompt_eval_count"],
        "tokens": final["eval_count"],
        "chunks": len(times),
        "reported": final["eval_count"] / (final["eval_duration"] / 1e9),
        "prompt_tps": final["prompt_eval_count"] / (final["prompt_eval_duration"] / 1e9)
        if final.get("prompt_eval_duration") else 0.0,
        "client": client_rate(times),
        "text": "".join(pieces),
    }


def run_minerva(args, model_path, log):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [args.minerva, "serve", "--model", model_path, "--port", str(port), "--ctx-size", str(args.ctx),
           "--python", args.python]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    with tempfile.TemporaryDirectory(prefix="minerva-bench-store-") as store:
        env = {**os.environ, "MINERVA_MODELS": store}
        with Server("minerva", cmd, base, env=env, timeout=600, log_file=log):
            with urllib.request.urlopen(base + "/v1/models", timeout=60) as r:
                model = json.load(r)["data"][0]["id"]
            generate(base, model, args.prompt_list[0], 2)  # warm-up (and the load, if lazy)
            return [generate(base, model, p, args.tokens) for p in args.prompt_list]


# ---- driver ----

def median(xs):
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minerva", help="the minerva binary")
    ap.add_argument("--python", default=os.environ.get("MINERVA_PYTHON", "python3"),
                    help="a Python that imports mlx_lm (default: MINERVA_PYTHON, else python3)")
    ap.add_argument("--hf-dir", required=True, help="the Hugging Face model directory")
    ap.add_argument("--gguf", help="the same model as GGUF (for minerva-llama)")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help=f"a subset of {','.join(SYSTEMS)}")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=32, help="tokens generated per prompt")
    ap.add_argument("--prompts", type=int, default=len(PROMPTS), help="how many of the built-in prompts")
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=0, help="minerva --threads (llama.cpp; 0: its default)")
    ap.add_argument("--json", help="write every measurement here")
    ap.add_argument("--server-log", help="a directory for the servers' and the mlx_lm child's output")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--prompts-json", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        child(args.hf_dir, json.loads(args.prompts_json), args.tokens)
        return
    systems = [s for s in args.systems.split(",") if s]
    unknown = set(systems) - set(SYSTEMS)
    if unknown:
        ap.error(f"unknown systems {sorted(unknown)}")
    if any(s.startswith("minerva") for s in systems) and not args.minerva:
        ap.error("--minerva is needed for the minerva systems")
    if "minerva-llama" in systems and not args.gguf:
        ap.error("--gguf is needed for minerva-llama")
    args.prompt_list = PROMPTS[: args.prompts]
    if args.server_log:
        os.makedirs(args.server_log, exist_ok=True)

    results = {s: [] for s in systems}  # system -> [(round, prompt index, measurement)]
    for rnd in range(args.rounds):
        order = systems[rnd % len(systems):] + systems[: rnd % len(systems)]
        for system in order:
            log = open(os.path.join(args.server_log, f"{system}-round{rnd}.log"), "wb") if args.server_log else None
            t0 = time.monotonic()
            try:
                if system == "mlx_lm":
                    runs = run_mlx_lm(args, log)
                elif system == "minerva-mlx":
                    runs = run_minerva(args, args.hf_dir, log)
                else:
                    runs = run_minerva(args, args.gguf, log)
            finally:
                if log:
                    log.close()
            if len(runs) != len(args.prompt_list):
                sys.exit(f"{system}: {len(runs)} results for {len(args.prompt_list)} prompts")
            for i, m in enumerate(runs):
                results[system].append((rnd, i, m))
            print(f"round {rnd + 1}/{args.rounds} {system:14} {time.monotonic() - t0:6.1f} s  decode "
                  f"reported {median([m['reported'] for m in runs]):7.2f} tok/s, "
                  f"client {median([m['client'] for m in runs]):7.2f} tok/s  "
                  f"(tokens {[m['tokens'] for m in runs]})", flush=True)

    print(f"\n{args.rounds} rounds x {len(args.prompt_list)} prompts, up to {args.tokens} tokens each; medians:")
    print(f"  {'system':14} {'reported':>10} {'client':>10} {'prompt':>10}   (tok/s)")
    summary = {}
    for system in systems:
        ms = [m for _, _, m in results[system]]
        summary[system] = {k: median([m[k] for m in ms]) for k in ("reported", "client", "prompt_tps")}
        s = summary[system]
        print(f"  {system:14} {s['reported']:10.2f} {s['client']:10.2f} {s['prompt_tps']:10.2f}")
    ratios = {}
    for a, b in (("minerva-mlx", "mlx_lm"), ("minerva-mlx", "minerva-llama")):
        if a in summary and b in summary:
            ratios[f"{a}/{b}"] = {k: summary[a][k] / summary[b][k] if summary[b][k] else float("nan")
                                  for k in ("reported", "client")}
            r = ratios[f"{a}/{b}"]
            print(f"  {a} / {b}: reported {r['reported']:.3f}, client {r['client']:.3f}")

    # Sanity: generations cut short, prompts tokenized differently, greedy texts that differ.
    for system in systems:
        short = [(r, i, m["tokens"]) for r, i, m in results[system] if m["tokens"] < args.tokens]
        if short:
            print(f"  note: {system}: {len(short)} generations ended before {args.tokens} tokens "
                  f"(round, prompt, tokens): {short}")
        merged = [(r, i) for r, i, m in results[system] if "chunks" in m and m["chunks"] != m["tokens"]]
        if merged:
            print(f"  note: {system}: streamed chunks != eval_count for (round, prompt) {merged}")
    if "mlx_lm" in results and "minerva-mlx" in results:
        direct = {(r, i): m for r, i, m in results["mlx_lm"]}
        same = sum(direct[(r, i)]["text"] == m["text"] for r, i, m in results["minerva-mlx"])
        counts = {(r, i): (direct[(r, i)]["prompt_tokens"], m["prompt_tokens"])
                  for r, i, m in results["minerva-mlx"] if direct[(r, i)]["prompt_tokens"] != m["prompt_tokens"]}
        print(f"  mlx_lm and minerva-mlx: identical greedy text in {same}/{len(results['minerva-mlx'])} generations"
              + (f"; prompt token counts differ at {counts}" if counts else "; same prompt token counts"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": {k: v for k, v in vars(args).items() if k not in ("child", "prompts_json")},
                       "results": {s: [{"round": r, "prompt": i, **m} for r, i, m in v] for s, v in results.items()},
                       "summary": summary, "ratios": ratios}, f, indent=1)


if __name__ == "__main__":
    main()
