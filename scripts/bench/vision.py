#!/usr/bin/env python3
"""Images in the prompt: time to first token (image encoding plus the prompt's prefill) and
prompt throughput, Minerva against the reference llama-server, same model, projector, images
and settings, in interleaved rounds.

    python3 scripts/bench/vision.py --minerva target/release/minerva \\
        --llama-server ~/.cache/minerva/reference/build-0.3.36/bin/llama-server \\
        --vlm-dir ~/.cache/minerva/fixtures/tiny-vlm --rounds 3

Each request is a streamed `/v1/chat/completions` with one PNG (a size of `--sizes`) and a short
question, greedy, `max_tokens` 1, `cache_prompt: false`, so the whole prompt and the image are
computed every time; the time to the first content chunk is measured on the client for both
servers alike. Prints per size the median TTFT of each server, prompt tokens/s and the ratio
llama-server TTFT / Minerva TTFT (above 1: Minerva is faster). Stdlib only.
"""
import argparse
import base64
import json
import os
import statistics
import struct
import sys
import time
import urllib.request
import zlib

sys.path.insert(0, os.path.dirname(__file__))
from servers import Server, free_port  # noqa: E402


def png(width, height, seed):
    rows = b"".join(
        b"\x00" + bytes(((x * 7 + seed) % 256, (y * 5 + seed) % 256, (x ^ y) % 256)[c]
                        for x in range(width) for c in range(3))
        for y in range(height))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def ttft(base, model, image):
    body = {
        "model": model, "stream": True, "temperature": 0, "max_tokens": 1, "cache_prompt": False,
        "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(image).decode()}},
            {"type": "text", "text": "Describe this image."}]}],
    }
    req = urllib.request.Request(base + "/v1/chat/completions", data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    start = time.perf_counter()
    first, prompt_tokens = None, None
    with urllib.request.urlopen(req, timeout=900) as resp:
        for line in resp:
            line = line.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            event = json.loads(line[6:])
            if first is None and event.get("choices") and event["choices"][0]["delta"].get("content") is not None:
                first = time.perf_counter() - start
            if event.get("usage"):
                prompt_tokens = event["usage"]["prompt_tokens"]
    if first is None:
        first = time.perf_counter() - start
    return first, prompt_tokens


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minerva", required=True)
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--vlm-dir", default=os.path.expanduser("~/.cache/minerva/fixtures/tiny-vlm"))
    ap.add_argument("--sizes", default="224,448,672", help="square image sides in pixels")
    ap.add_argument("--requests", type=int, default=3, help="requests per size per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--ctx", type=int, default=4096)
    args = ap.parse_args()
    model = os.path.join(args.vlm_dir, "model.gguf")
    mmproj = os.path.join(args.vlm_dir, "mmproj.gguf")
    sizes = [int(s) for s in args.sizes.split(",")]
    t = str(args.threads)
    results = {"minerva": {s: [] for s in sizes}, "llama-server": {s: [] for s in sizes}}
    tokens = {}
    for rnd in range(args.rounds):
        order = ["minerva", "llama-server"] if rnd % 2 == 0 else ["llama-server", "minerva"]
        for name in order:
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            if name == "minerva":
                cmd = [args.minerva, "serve", "--model", model, "--mmproj", mmproj, "--port", str(port),
                       "--ctx-size", str(args.ctx), "--threads", t, "--parallel", "1", "--no-default-model"]
                env = {**os.environ, "MINERVA_MODELS": os.path.join("/tmp", f"minerva-bench-vision-{port}")}
            else:
                cmd = [args.llama_server, "-m", model, "--mmproj", mmproj, "--host", "127.0.0.1",
                       "--port", str(port), "-c", str(args.ctx), "-np", "1", "-t", t, "-tb", t,
                       "-b", "2048", "-ub", "512", "--flash-attn", "auto", "--no-webui"]
                env = None
            with Server(name, cmd, base, env=env):
                ttft(base, "model", png(64, 64, 99))  # warm-up
                for size in sizes:
                    for i in range(args.requests):
                        seconds, n = ttft(base, "model", png(size, size, rnd * 100 + i))
                        results[name][size].append(seconds)
                        tokens[(name, size)] = n
            print(f"round {rnd + 1}: {name} done", file=sys.stderr)
    print(f"{'size':>9} {'prompt tok':>10} {'minerva ttft':>13} {'llama ttft':>11} "
          f"{'minerva tok/s':>14} {'llama tok/s':>12} {'ratio':>6}")
    for size in sizes:
        m = statistics.median(results["minerva"][size])
        r = statistics.median(results["llama-server"][size])
        n_m, n_r = tokens[("minerva", size)], tokens[("llama-server", size)]
        print(f"{size}x{size:<4} {n_m:>10} {m * 1e3:>11.0f}ms {r * 1e3:>9.0f}ms "
              f"{n_m / m:>14.1f} {n_r / r:>12.1f} {r / m:>6.3f}")
        if n_m != n_r:
            print(f"  prompt tokens differ: minerva {n_m}, llama-server {n_r}")


if __name__ == "__main__":
    main()
