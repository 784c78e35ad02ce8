#!/usr/bin/env python3
"""Record a vision reference fixture from llama.cpp's llama-server (built by
scripts/reference/build.sh) on the tiny Qwen2-VL model of scripts/fixtures/tiny_vlm.py.

Writes tests/fixtures/vision_qwen2vl.json: greedy /v1/chat/completions of OpenAI-style messages
whose user turns carry PNG images as base64 data URIs (`image_url` parts), one or two images per
message, of several sizes, plus a text-only case. Per case:

  messages        the request's messages, exactly as sent (images inline as data URIs)
  images          per image, in prompt order: the pattern that drew it (see draw()), its PNG size,
                  the size llama.cpp resized it to (multiples of 28, 8..4096 tokens), and its token
                  grid: nx * ny embeddings (n_tokens), occupying max(nx, ny) M-RoPE positions (n_pos)
  prompt          the chat template's output (/apply-template), each image as the media marker
                  `<__media__>`; libmtmd puts <|vision_start|> IMAGE <|vision_end|> in its place
  prompt_pieces   token ids of the text between markers (/tokenize, parse_special), in order
  prompt_tokens   usage.prompt_tokens: text tokens + per image 2 + n_tokens (embeddings, not
                  positions); n_prompt_pos: the positions the prompt occupies (text + per image
                  2 + n_pos)
  tokens, text    the greedy reply (max_tokens 16, temperature 0): token ids (/completion's
                  return_tokens), natural-log probabilities (pre-sampling, chat `logprobs`; null
                  if the server skipped a step that ended inside a UTF-8 sequence), the text, the
                  finish reason
  completion      the same prompt through /completion ({prompt_string, multimodal_data}): its
                  content and tokens_evaluated, which must agree with the chat's

The server runs with the settings of record.py (2 threads, batch 2048, micro-batch 512, flash
attention auto) plus `--mmproj`, one slot of 4096 tokens, LLAMA_MEDIA_MARKER=<__media__> (else
the marker is random per process; /props reports it). It first runs tiny_vlm.py into --model-dir
(about 20 s, byte-identical every time; the header records both sha256), with --python (a Python
with gguf and numpy, default the test venv). The rest is stdlib only. Usage:

  python3 scripts/reference/record_vision.py [--server PATH] [--model-dir DIR] [--python PY]
"""
import argparse
import base64
import math
import os
import struct
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import record  # noqa: E402  (the reference helpers: Server, sha256, dump_fixture, ...)

N_CTX = 4096
MAX_TOKENS = 16
MARKER = "<__media__>"
# Qwen2-VL preprocessing in llama.cpp (clip.cpp, mtmd-image.cpp): patch 14, 2x2 merge.
ALIGN = 28
MIN_PIXELS = 8 * ALIGN * ALIGN
MAX_PIXELS = 4096 * ALIGN * ALIGN


# --------------------------------------------------------------------------------------------
# Images: deterministic patterns, written as 8-bit RGB PNGs (stdlib zlib, no filter).

def draw(spec):
    """RGB bytes of a pattern: `gradient` (red along x, green along y, blue checkerboard of
    `cell`-pixel squares) or `stripes` (vertical bars of `cell` pixels cycling through colors)."""
    w, h, kind, cell = spec["width"], spec["height"], spec["pattern"], spec["cell"]
    rows = []
    palette = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)]
    for y in range(h):
        row = bytearray()
        for x in range(w):
            if kind == "gradient":
                row += bytes((x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1),
                              255 if (x // cell + y // cell) % 2 else 0))
            elif kind == "stripes":
                row += bytes(palette[(x // cell) % len(palette)])
            else:
                raise ValueError(kind)
        rows.append(bytes(row))
    return rows


def png(spec):
    rows = draw(spec)
    raw = b"".join(b"\x00" + r for r in rows)

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", spec["width"], spec["height"], 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def smart_resize(w, h):
    """llama.cpp's calc_size_preserved_ratio for qwen2vl (align 28, min 8 / max 4096 tokens)."""
    def rnd(x):
        return int(math.floor(x / ALIGN + 0.5)) * ALIGN

    w_bar, h_bar = max(ALIGN, rnd(w)), max(ALIGN, rnd(h))
    if w_bar * h_bar > MAX_PIXELS:
        beta = math.sqrt(h * w / MAX_PIXELS)
        h_bar = max(ALIGN, int(math.floor(h / beta / ALIGN)) * ALIGN)
        w_bar = max(ALIGN, int(math.floor(w / beta / ALIGN)) * ALIGN)
    elif w_bar * h_bar < MIN_PIXELS:
        beta = math.sqrt(MIN_PIXELS / (h * w))
        h_bar = int(math.ceil(h * beta / ALIGN)) * ALIGN
        w_bar = int(math.ceil(w * beta / ALIGN)) * ALIGN
    return w_bar, h_bar


def image_info(spec):
    rw, rh = smart_resize(spec["width"], spec["height"])
    nx, ny = rw // ALIGN, rh // ALIGN
    return {**spec, "resized": [rw, rh], "nx": nx, "ny": ny, "n_tokens": nx * ny, "n_pos": max(nx, ny)}


def img(width, height, pattern="gradient", cell=8):
    return {"width": width, "height": height, "pattern": pattern, "cell": cell}


def part_image(spec):
    return {"type": "image_url", "image_url": {"url": "data:image/png;base64," + base64.b64encode(png(spec)).decode()}}


def part_text(text):
    return {"type": "text", "text": text}


# name, messages (image parts given as specs, turned into data URIs when sent)
CASES = [
    ("text_only", [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]),
    ("text_parts_only", [{"role": "user", "content": [part_text("Name three colors."), part_text("Be brief.")]}]),
    ("img_28x28", [{"role": "user", "content": [img(28, 28), part_text("Describe this image.")]}]),
    ("img_64x48", [{"role": "user", "content": [part_text("What is in this picture?"), img(64, 48)]}]),
    ("img_200x150", [{"role": "user", "content": [img(200, 150), part_text("Describe this image.")]}]),
    ("img_300x300", [{"role": "user", "content": [img(300, 300, "stripes", 20), part_text("What colors do you see?")]}]),
    ("img_56x224_tall", [{"role": "user", "content": [img(56, 224, "stripes", 7), part_text("Describe this image.")]}]),
    ("img_224x224_stripes", [{"role": "user", "content": [img(224, 224, "stripes", 16), part_text("Describe this image.")]}]),
    ("two_images", [{"role": "user", "content": [
        part_text("Compare the two images."), img(64, 48), part_text("and"), img(200, 150, "stripes", 10),
        part_text("Which one is larger?")]}]),
    ("system_and_history", [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": [img(84, 84), part_text("What is this?")]},
        {"role": "assistant", "content": "It looks like a colorful gradient."},
        {"role": "user", "content": "What colors does it have?"}]),
]


def materialize(messages):
    """(messages to send, image infos in prompt order)."""
    out, images = [], []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            parts = []
            for p in content:
                if "pattern" in p:
                    images.append(image_info(p))
                    parts.append(part_image(p))
                else:
                    parts.append(p)
            content = parts
        out.append({**m, "content": content})
    return out, images


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", help="llama-server binary (default: the one build.sh made)")
    ap.add_argument("--model-dir", default=os.path.join(record.CACHE, "tiny-vlm"),
                    help="where tiny_vlm.py (re)writes model.gguf and mmproj.gguf (default: %(default)s)")
    ap.add_argument("--python", default=os.path.expanduser("~/.cache/minerva/venv-test/bin/python"),
                    help="a Python with gguf and numpy, to run tiny_vlm.py")
    m = record.MODELS["qwen"]
    ap.add_argument("--qwen", default=os.environ.get(m["env"], m["default"]), help=f"{m['name']} GGUF")
    args = ap.parse_args()
    binary = record.reference_server(args.server)
    record.check_model("qwen", args.qwen)

    model = os.path.join(args.model_dir, "model.gguf")
    mmproj = os.path.join(args.model_dir, "mmproj.gguf")
    t0 = time.time()
    script = os.path.join(record.REPO, "scripts", "fixtures", "tiny_vlm.py")
    subprocess.run([args.python, script, args.model_dir, "--qwen", args.qwen], check=True)
    print(f"tiny_vlm.py: {time.time() - t0:.1f}s", file=sys.stderr)

    os.environ["LLAMA_MEDIA_MARKER"] = MARKER
    base_args = record.server_args
    record.server_args = lambda path, port: base_args(path, port) + ["-c", str(N_CTX), "--mmproj", mmproj]
    log_path = os.path.join(record.CACHE, "llama-server-vision.log")
    srv = record.Server(binary, model, log_path)
    try:
        props = srv.get("/props")
        if props.get("media_marker") != MARKER or not props.get("modalities", {}).get("vision"):
            raise RuntimeError(f"unexpected /props: media_marker {props.get('media_marker')!r}, "
                               f"modalities {props.get('modalities')}")
        items = []
        for name, spec_messages in CASES:
            t1 = time.time()
            messages, images = materialize(spec_messages)
            prompt = srv.post("/apply-template", {"messages": messages})["prompt"]
            texts = prompt.split(MARKER)
            if len(texts) != len(images) + 1:
                raise RuntimeError(f"{name}: {len(texts) - 1} media markers for {len(images)} images")
            pieces = [srv.post("/tokenize", {"content": t, "add_special": True, "parse_special": True})["tokens"]
                      for t in texts]
            expect = sum(len(p) for p in pieces) + sum(2 + im["n_tokens"] for im in images)
            n_pos = sum(len(p) for p in pieces) + sum(2 + im["n_pos"] for im in images)

            chat = srv.post("/v1/chat/completions", {
                "model": "tiny-vlm", "messages": messages, "max_tokens": MAX_TOKENS, "temperature": 0,
                "cache_prompt": False, "seed": 0, "logprobs": True, "top_logprobs": 1})
            choice = chat["choices"][0]
            steps = choice["logprobs"]["content"]
            if chat["usage"]["prompt_tokens"] != expect:
                raise RuntimeError(f"{name}: prompt_tokens {chat['usage']['prompt_tokens']}, expected {expect}")

            body = {"prompt": {"prompt_string": prompt,
                               "multimodal_data": [p["image_url"]["url"].split(",", 1)[1]
                                                   for msg in messages if isinstance(msg["content"], list)
                                                   for p in msg["content"] if p["type"] == "image_url"]},
                    "n_predict": MAX_TOKENS, "temperature": 0, "cache_prompt": False, "seed": 0,
                    "return_tokens": True}
            if not images:
                body["prompt"] = prompt
            comp = srv.post("/completion", body)
            tokens = comp["tokens"]
            if comp["content"] != choice["message"]["content"] or comp["tokens_evaluated"] != expect:
                raise RuntimeError(f"{name}: /completion disagrees: {comp['content']!r} / {comp['tokens_evaluated']} "
                                   f"vs {choice['message']['content']!r} / {expect}")
            # The server leaves out the probabilities of a step that ends inside a UTF-8 sequence.
            logprobs = [s["logprob"] for s in steps] if [s["id"] for s in steps] == tokens else None
            items.append({
                "name": name,
                "messages": messages,
                "images": [{k: v for k, v in im.items()} for im in images],
                "prompt": prompt,
                "prompt_pieces": pieces,
                "prompt_tokens": chat["usage"]["prompt_tokens"],
                "n_prompt_pos": n_pos,
                "tokens": tokens,
                "logprobs": logprobs,
                "text": choice["message"]["content"],
                "finish_reason": choice["finish_reason"],
                "completion": {"tokens": comp["tokens"], "content": comp["content"],
                               "tokens_evaluated": comp["tokens_evaluated"], "stop_type": comp.get("stop_type")},
            })
            print(f"{name}: {chat['usage']['prompt_tokens']} prompt tokens, {time.time() - t1:.1f}s: "
                  f"{choice['message']['content']!r}", file=sys.stderr)
        header = {
            "model": "tiny-qwen2vl",
            "model_name": "Tiny Qwen2-VL: Qwen2.5-Coder-0.5B-Instruct Q4_K_M (arch qwen2vl) + random vision",
            "generator": "scripts/fixtures/tiny_vlm.py",
            "qwen_sha256": m["sha256"],
            "model_sha256": record.sha256(model),
            "mmproj_sha256": record.sha256(mmproj),
            "llama_cpp": props.get("build_info"),
            "llama_cpp_python": record.LLAMA_CPP_PYTHON_VERSION,
            "server_version": record.server_version(binary),
            "settings": {
                "server_command": "LLAMA_MEDIA_MARKER='<__media__>' llama-server "
                                  + " ".join(record.server_args("model.gguf", "PORT")).replace(mmproj, "mmproj.gguf"),
                "request": {"max_tokens": MAX_TOKENS, "temperature": 0, "cache_prompt": False, "seed": 0,
                            "logprobs": True, "top_logprobs": 1},
                "media_marker": MARKER,
                "image_tokens": "resize to multiples of 28 (round, then scale into 8..4096 tokens), "
                                "nx = w/28, ny = h/28, n_tokens = nx*ny, n_pos = max(nx, ny); libmtmd "
                                "wraps each image as <|vision_start|> (151652) IMAGE <|vision_end|> (151653)",
                "logprobs": "natural log of softmax over the raw logits (pre-sampling)",
            },
        }
        path = os.path.join(record.FIXTURES, "vision_qwen2vl.json")
        size = record.dump_fixture(path, header, "cases", items)
        print(f"vision: {len(items)} cases, {size} bytes, {time.time() - t0:.1f}s", file=sys.stderr)
    finally:
        srv.close()


if __name__ == "__main__":
    main()
