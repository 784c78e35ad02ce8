#!/usr/bin/env python3
"""Greedy agreement and decode speed: the same model as GGUF (llama.cpp) and as a Hugging Face
directory (MLX), served by one `minerva serve --model GGUF --model HF_DIR`.

    mlx_vs_llama.py BASE_URL GGUF_MODEL_ID HF_MODEL_ID [MAX_TOKENS]

For each prompt: both answers (temperature 0, MAX_TOKENS tokens, default 8), how many leading
tokens they share, and each backend's decode tok/s (Ollama's eval_count / eval_duration).
"""
import sys

import httpx

PROMPTS = [
    "Write a Python function that reverses a string.",
    "What is the capital of France?",
    "Explain recursion in one sentence.",
    "List three prime numbers.",
    "Translate 'good morning' into Spanish.",
    "Write a haiku about the sea.",
    "What does HTTP stand for?",
    "Give a SQL query that counts the rows of a table named users.",
    "How many days are in a leap year?",
    "Name the largest planet in the solar system.",
    "Write a shell command that lists files by size.",
    "What is 17 times 3?",
    "Explain what a hash map is.",
    "Write a JavaScript arrow function that doubles a number.",
    "Why is the sky blue?",
    "What is the difference between a list and a tuple in Python?",
    "Suggest a name for a pet turtle.",
    "Write a regular expression that matches an email address.",
    "What is the boiling point of water in Fahrenheit?",
    "Describe Rust's ownership model in one sentence.",
]


def run(client, model, prompt, n):
    r = client.post("/api/chat", json={
        "model": model, "messages": [{"role": "user", "content": prompt}], "stream": False,
        "options": {"temperature": 0, "num_predict": n}})
    r.raise_for_status()
    b = r.json()
    ids = client.post("/tokenize", json={"model": model, "content": b["message"]["content"]}).json()["tokens"]
    tps = b["eval_count"] / (b["eval_duration"] / 1e9) if b.get("eval_duration") else 0.0
    return b["message"]["content"], ids, tps


def main():
    base, gguf, hf = sys.argv[1:4]
    n = int(sys.argv[4]) if len(sys.argv) > 4 else 8
    same, shared_total, total = 0, 0, 0
    speeds = {"llama.cpp": [], "mlx": []}
    with httpx.Client(base_url=base, timeout=600) as client:
        run(client, hf, "Hi", 1)  # load and warm up
        run(client, gguf, "Hi", 1)
        for p in PROMPTS:
            a, a_ids, a_tps = run(client, gguf, p, n)
            b, b_ids, b_tps = run(client, hf, p, n)
            shared = next((i for i, (x, y) in enumerate(zip(a_ids, b_ids)) if x != y), min(len(a_ids), len(b_ids)))
            same += a == b
            shared_total += shared
            total += max(len(a_ids), len(b_ids))
            speeds["llama.cpp"].append(a_tps)
            speeds["mlx"].append(b_tps)
            print(f"{p!r}\n  llama.cpp {a_tps:6.1f} tok/s {a!r}\n  mlx       {b_tps:6.1f} tok/s {b!r}\n  shared leading tokens: {shared}")
    print(f"identical answers: {same}/{len(PROMPTS)}; shared leading tokens: {shared_total}/{total}")
    for k, v in speeds.items():
        print(f"{k}: median decode {sorted(v)[len(v) // 2]:.1f} tok/s")


if __name__ == "__main__":
    main()
