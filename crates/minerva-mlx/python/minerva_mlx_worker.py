#!/usr/bin/env python3
"""Minerva's MLX worker: runs one Hugging Face model with mlx-lm for a Minerva server.

    minerva_mlx_worker.py MODEL_DIR

Minerva starts this program (one per loaded model) and speaks JSON lines with it: requests on
stdin, replies on stdout; logs go to stderr, which Minerva re-emits in its own log. Minerva
tokenizes and detokenizes; this program only turns prompt token ids into generated token ids.

Protocol (version 2), one JSON object per line, each with a "type":
  worker -> {"type": "hello", "protocol": 2, "mlx_lm": VERSION}           first line, always
  minerva -> {"type": "hello", "protocol": 2}       a different version: the worker exits (2)
  worker -> {"type": "ready", "n_vocab": N}  or  {"type": "error", "message": M}, then exits
  minerva -> {"type": "generate", "id": I, "prompt": [ids], "max_tokens": N|null,
              "eos": [ids], "sampling": {"temperature", "top_p", "top_k", "min_p",
              "repetition_penalty", "repetition_context_size", "presence_penalty",
              "frequency_penalty", "seed", "logit_bias"},
              "reasoning": null | {"open", "close", "inside", "budget": N, "forced": [ids]}}
  worker -> {"type": "token", "id": I, "token": T} ...
            {"type": "done", "id": I, "reason": "stop"|"length"|"cancelled",
             "prompt_tokens": P, "completion_tokens": C, "prompt_ms": X, "generation_ms": Y}
            or {"type": "error", "id": I, "message": M}
  minerva -> {"type": "cancel", "id": I}     stops that generation before its next token
  minerva -> {"type": "stats", "id": I}  -> {"type": "stats", "id": I, "generated": total tokens
                                              generated so far, "queued": N, "running": I|null}
  minerva -> {"type": "ping", "id": I}  -> {"type": "pong", "id": I}     health check, every few
              seconds once ready; answered at once, also while a generation runs (mlx releases
              the GIL while it computes). Minerva kills a worker that stops answering.
  minerva -> {"type": "shutdown"}  (or stdin closed, or SIGTERM): the worker exits

Requests are served one at a time, in order: the others wait in a queue.
"""
import json
import os
import queue
import signal
import sys
import threading
import time

PROTOCOL = 2

# The protocol owns the real stdout; anything a library prints goes to stderr.
_out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
_out_lock = threading.Lock()


def send(msg):
    line = json.dumps(msg, separators=(",", ":"))
    with _out_lock:
        _out.write(line + "\n")
        _out.flush()


def log(message):
    print(f"minerva-mlx-worker: {message}", file=sys.stderr, flush=True)


class State:
    def __init__(self):
        self.jobs = queue.Queue()
        self.cancelled = set()
        self.lock = threading.Lock()
        self.generated = 0
        self.running = None


def reader(state):
    """Reads stdin: queues generations, marks cancellations, answers stats and pings at once."""
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            msg = json.loads(line)
        except ValueError:
            log(f"ignoring a line that is not JSON: {line[:80]!r}")
            continue
        kind = msg.get("type")
        if kind == "generate":
            state.jobs.put(msg)
        elif kind == "cancel":
            with state.lock:
                state.cancelled.add(msg.get("id"))
        elif kind == "stats":
            with state.lock:
                send({"type": "stats", "id": msg.get("id"), "generated": state.generated,
                      "queued": state.jobs.qsize(), "running": state.running})
        elif kind == "ping":
            send({"type": "pong", "id": msg.get("id")})
        elif kind == "shutdown":
            break
        else:
            log(f"ignoring a message of unknown type {kind!r}")
    state.jobs.put(None)


def handshake():
    import mlx_lm

    send({"type": "hello", "protocol": PROTOCOL, "mlx_lm": getattr(mlx_lm, "__version__", "?")})
    line = sys.stdin.readline()
    if not line:
        sys.exit(0)
    msg = json.loads(line)
    if msg.get("type") != "hello" or msg.get("protocol") != PROTOCOL:
        send({"type": "error", "message":
              f"this worker speaks protocol {PROTOCOL}, Minerva asked for {msg.get('protocol')!r}"})
        sys.exit(2)


class ReasoningBudget:
    """A logits processor that enforces a reasoning budget (llama-server's --reasoning-budget):
    once the reply has spent `budget` tokens inside its `<think>` block and the block is still
    open, the tokens of `forced` (the closing text) are generated one by one instead of sampled.

    Where the block is follows minerva_core::ReasoningSplitter, on each token's text: open from
    the start when `inside` (the prompt opened it), or when the reply begins, after whitespace,
    with `open`; closed at the first `close`. The processor sees the tokens generated so far on
    each call (the newest last), so it keeps its own state in step with the sampler.
    """

    def __init__(self, spec, tokenizer):
        self.open = spec["open"]
        self.close = spec["close"]
        self.state = "reasoning" if spec.get("inside") else "undecided"
        self.budget = spec.get("budget")
        self.forced = [int(t) for t in spec.get("forced", [])]
        self.forcing = None
        self.text = ""
        self.spent = 0
        self.calls = 0
        self.tokenizer = tokenizer

    def push(self, token):
        piece = self.tokenizer.decode([token])
        if self.state == "answer":
            return
        self.text += piece
        if self.state == "undecided":
            start = self.text.lstrip()
            if len(start) < len(self.open) and self.open.startswith(start):
                return
            if not start.startswith(self.open):
                self.state = "answer"
                return
            self.state = "reasoning"
            self.text = start[len(self.open):]
        if self.close in self.text:
            self.state = "answer"
        else:
            self.spent += 1

    def forced_next(self):
        if self.state != "reasoning":
            return None
        if self.forcing is None:
            if self.budget is None or self.spent < self.budget:
                return None
            self.forcing = 0
            # A closing tag the reply has begun is finished rather than written again.
            begun = next((k for k in range(len(self.close) - 1, 0, -1)
                          if self.text.endswith(self.close[:k])), 0)
            if begun:
                rest = self.close[begun:] + "\n\n"
                self.forced = list(self.tokenizer.encode(rest, add_special_tokens=False))
        if self.forcing >= len(self.forced):
            return None
        token = self.forced[self.forcing]
        self.forcing += 1
        return token

    def __call__(self, tokens, logits):
        import mlx.core as mx

        if self.calls > 0:
            self.push(int(tokens[-1].item()))
        self.calls += 1
        token = self.forced_next()
        if token is None:
            return logits
        only = mx.arange(logits.shape[-1]) == token
        return mx.where(only, mx.zeros_like(logits), mx.full(logits.shape, -mx.inf, logits.dtype))


def generate(model, tokenizer, job, state):
    import mlx.core as mx
    from mlx_lm.generate import generate_step
    from mlx_lm.sample_utils import make_logits_processors, make_sampler

    rid = job["id"]
    s = job.get("sampling", {})
    if s.get("seed") is not None:
        mx.random.seed(int(s["seed"]))
    temp = float(s.get("temperature", 0.0))
    sampler = make_sampler(temp=max(temp, 0.0), top_p=float(s.get("top_p", 1.0)),
                           min_p=float(s.get("min_p", 0.0)), top_k=int(s.get("top_k", 0)))
    bias = {int(t): float(b) for t, b in s.get("logit_bias", [])}
    processors = make_logits_processors(
        logit_bias=bias or None,
        repetition_penalty=s.get("repetition_penalty"),
        repetition_context_size=int(s.get("repetition_context_size", 20)),
        presence_penalty=s.get("presence_penalty"),
        frequency_penalty=s.get("frequency_penalty"),
    )
    reasoning = job.get("reasoning")
    if reasoning and reasoning.get("budget") is not None:
        processors = list(processors) + [ReasoningBudget(reasoning, tokenizer)]
    prompt = job["prompt"]
    max_tokens = job.get("max_tokens")
    eos = set(job.get("eos", []))
    start = time.perf_counter()
    first = None
    count = 0
    reason = "length"
    steps = generate_step(mx.array(prompt), model, max_tokens=-1 if max_tokens is None else max_tokens,
                          sampler=sampler, logits_processors=processors)
    for token, _ in steps:
        if first is None:
            first = time.perf_counter()
        with state.lock:
            if rid in state.cancelled:
                reason = "cancelled"
                break
        token = int(token)
        if token in eos:
            reason = "stop"
            break
        count += 1
        with state.lock:
            state.generated += 1
        send({"type": "token", "id": rid, "token": token})
        if max_tokens is not None and count >= max_tokens:
            break
    end = time.perf_counter()
    first = first or end
    if reason == "cancelled":
        log(f"generation {rid} cancelled after {count} tokens")
    send({"type": "done", "id": rid, "reason": reason, "prompt_tokens": len(prompt),
          "completion_tokens": count, "prompt_ms": (first - start) * 1000.0,
          "generation_ms": (end - first) * 1000.0})


def main():
    if len(sys.argv) != 2:
        log("usage: minerva_mlx_worker.py MODEL_DIR")
        sys.exit(2)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    handshake()
    try:
        from mlx_lm import load

        model, tokenizer = load(sys.argv[1])
        n_vocab = int(model.args.vocab_size) if hasattr(model, "args") else None
    except Exception as e:  # noqa: BLE001 - reported to Minerva, which shows it
        send({"type": "error", "message": f"mlx-lm could not load {sys.argv[1]}: {e}"})
        sys.exit(1)
    state = State()
    send({"type": "ready", "n_vocab": n_vocab})
    threading.Thread(target=reader, args=(state,), daemon=True).start()
    while True:
        job = state.jobs.get()
        if job is None:
            break
        with state.lock:
            state.running = job["id"]
        try:
            generate(model, tokenizer, job, state)
        except Exception as e:  # noqa: BLE001 - the request fails, the worker goes on
            log(f"generation {job['id']} failed: {e!r}")
            send({"type": "error", "id": job["id"], "message": str(e)})
        with state.lock:
            state.running = None
            state.cancelled.discard(job["id"])


if __name__ == "__main__":
    main()
