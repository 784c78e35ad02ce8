#!/usr/bin/env python3
"""Soak test: many concurrent streams against one `minerva serve --parallel P`, with clients
that disconnect mid-stream or give up at a deadline, then checks that nothing leaked.

  python3 scripts/bench/soak.py --minerva target/debug/minerva \\
      --model ~/.local/share/minerva/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf \\
      --streams 200 --parallel 4 --seed 1 --json /tmp/soak.json

The CI version is tests/e2e/test_soak.py (40 streams), which calls `run()` below.

What it does, on a server of its own (a temporary MINERVA_MODELS, `--queue` room for every
stream and no `--queue-timeout`, so none is refused, `--cache-ram` small enough that the warm-up
fills it):

1. Solo answers: each distinct prompt once, one at a time, greedy, `cache_prompt: false`
   (computed from scratch, nothing batched beside it), with `top_logprobs: 4`.
2. A warm-up soak, then a measured soak: N streams started at once (`/v1/chat/completions`,
   streamed, temperature 0, fixed seed, the prompt cache on as clients use it, `top_logprobs: 4`,
   `max_tokens` 8-24). Prompts share system prompts (prefix reuse across sequences and the host
   cache). Each stream is, at random: a client that reads to the end; one that disconnects
   after k content chunks (k = 0 closes right after the headers); one with a total deadline
   (0.5 s to most of the soak's expected length) that closes its socket when the deadline
   passes (in the queue or mid-stream).
3. After each soak, once the server has settled (at most `--settle` s): no slot processing, no
   request queued, `minerva_active_sequences` 0; the prompt cache's bytes within its budget and
   no slot holding more KV than `--ctx-size`; the same worker process as before (no crash).
4. Resident memory (VmRSS of the server plus its workers, from /proc) after the measured soak
   grows less than `--rss-growth` (5%) over after the warm-up.
5. Every stream that completed (finish_reason stop or length) equals its prompt's solo answer,
   cut to its own max_tokens, token for token, or departs at a near-tie (tests/e2e/greedy.py,
   the prompt-cache tests' definition).

Prints the figures (streams, completed, disconnected, timed out, refused, errors, leaked
sequences, RSS before/after, duration, equality) and exits 1 when a check fails. Stdlib only.
"""
import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "e2e"))

import greedy  # noqa: E402  (tests/e2e/greedy.py: the near-tie definition)
from servers import Server, free_port  # noqa: E402

SYSTEMS = [
    None,
    "You are a helpful assistant. Answer clearly and concisely.",
    (
        "You are the on-call assistant of a small team that runs a web shop. Answer in at most three "
        "sentences. The shop runs on three servers behind a load balancer; the database is "
        "PostgreSQL 16 with one replica; deployments happen on Tuesdays and Thursdays; incidents are "
        "tracked in the team's issue tracker with the label 'incident'. Never suggest restarting the "
        "database primary without asking a human first. Prefer commands that can be undone."
    ),
]

QUESTIONS = [
    "Write a haiku about the sea.",
    "What is a linked list?",
    "Name three prime numbers.",
    "Explain what a compiler does.",
    "Give me a Python one-liner that reverses a string.",
    "What is the capital of Japan?",
    "The checkout page is slow since this morning. Where do I look first?",
    "Is it safe to deploy on a Friday?",
]

# (system, question) pairs: every question under each system prompt.
PROMPTS = [(s, q) for s in SYSTEMS for q in QUESTIONS]

MAX_TOKENS = 24
# Alternatives listed per token: a departure may take any of them within the near-tie gap.
TOP_LOGPROBS = 4
# Seconds a client without a deadline waits for each read before it counts as an error.
CLIENT_TIMEOUT = 3600
MIN_TOKENS = 8


def messages(prompt):
    system, question = prompt
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]


def get_json(base, path, timeout=30):
    with urllib.request.urlopen(base + path, timeout=timeout) as r:
        return json.load(r)


def post_json(base, path, body, timeout=300):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def metrics(base):
    """The unlabelled and labelled samples of /metrics: {"name{labels}": value}."""
    with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


# ---------------------------------------------------------------------------------------------
# Processes and memory


def worker_pids(base):
    """The worker processes of the loaded models (/api/ps reports each one's pid)."""
    return sorted(m["pid"] for m in get_json(base, "/api/ps")["models"] if m.get("pid"))


def vm_rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rss_mib(pids):
    return round(sum(vm_rss_kib(p) for p in pids) / 1024, 1)


# ---------------------------------------------------------------------------------------------
# Requests


def body(model, prompt, max_tokens, seed, cache_prompt=True, stream=True):
    b = {
        "model": model,
        "messages": messages(prompt),
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": seed,
        "logprobs": True,
        "top_logprobs": TOP_LOGPROBS,
        "cache_prompt": cache_prompt,
        "stream": stream,
    }
    if stream:
        b["stream_options"] = {"include_usage": True}
    return b


def solo_answers(base, model, seed, prompts=PROMPTS, max_tokens=MAX_TOKENS):
    """Each prompt alone on the server, greedy, computed from scratch: ({prompt: (tokens, finish)},
    [seconds per request])."""
    out, times = {}, []
    for p in prompts:
        began = time.monotonic()
        r = post_json(base, "/v1/chat/completions", body(model, p, max_tokens, seed, cache_prompt=False, stream=False))
        times.append(time.monotonic() - began)
        choice = r["choices"][0]
        out[p] = ((choice.get("logprobs") or {}).get("content") or [], choice["finish_reason"])
    return out, times


class Stream:
    """One client: `kind` is "complete", "disconnect" (after `after` content chunks) or
    "timeout" (closes at `deadline` seconds after its start)."""

    def __init__(self, i, prompt, max_tokens, kind, after=None, deadline=None):
        self.i, self.prompt, self.max_tokens, self.kind = i, prompt, max_tokens, kind
        self.after, self.deadline = after, deadline
        self.outcome = None  # completed | disconnected | timed_out | refused | error
        self.status = None
        self.tokens, self.text, self.finish, self.usage, self.error = [], "", None, None, None
        self.started = self.ended = None

    def run(self, host, port, model, seed):
        self.started = time.monotonic()
        end_by = self.started + self.deadline if self.kind == "timeout" else None
        # A client without a deadline waits as long as the soak takes (the queue has no timeout).
        conn = http.client.HTTPConnection(host, port, timeout=CLIENT_TIMEOUT)
        try:
            conn.connect()
            self._set_timeout(conn, end_by)
            data = json.dumps(body(model, self.prompt, self.max_tokens, seed)).encode()
            conn.request("POST", "/v1/chat/completions", body=data,
                         headers={"content-type": "application/json"})
            resp = conn.getresponse()
            self.status = resp.status
            if resp.status != 200:
                self.outcome = "refused" if resp.status == 503 else "error"
                self.error = resp.read()[:300].decode("utf-8", "replace")
                return
            chunks = 0
            if self.kind == "disconnect" and self.after == 0:
                self.outcome = "disconnected"
                return
            while True:
                self._set_timeout(conn, end_by)
                raw = resp.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                event = json.loads(payload)
                if "error" in event:
                    self.outcome, self.error = "error", json.dumps(event["error"])[:300]
                    return
                if event.get("usage"):
                    self.usage = event["usage"]
                for choice in event.get("choices") or []:
                    content = (choice.get("logprobs") or {}).get("content") or []
                    self.tokens.extend(content)
                    self.text += (choice.get("delta") or {}).get("content") or ""
                    self.finish = choice.get("finish_reason") or self.finish
                    if content:
                        chunks += 1
                if self.kind == "disconnect" and chunks >= self.after:
                    self.outcome = "disconnected"
                    return
            if self.finish in ("stop", "length"):
                self.outcome = "completed"
            else:
                self.outcome, self.error = "error", f"stream ended without a finish reason ({self.finish})"
        except (socket.timeout, TimeoutError):
            self.outcome = "timed_out" if end_by is not None else "error"
            if end_by is None:
                self.error = "socket timeout"
        except (OSError, http.client.HTTPException, ValueError) as e:
            self.outcome, self.error = "error", f"{type(e).__name__}: {e}"
        finally:
            self.ended = time.monotonic()
            # Abrupt close: the server sees the connection go at its next write.
            try:
                if conn.sock is not None:
                    conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()

    @staticmethod
    def _set_timeout(conn, end_by):
        if end_by is None or conn.sock is None:
            return
        left = end_by - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline")
        conn.sock.settimeout(left)


def plan(n, rng, disconnect_share, timeout_share, timeout_max, prompts=PROMPTS):
    streams = []
    for i in range(n):
        prompt = rng.choice(prompts)
        max_tokens = rng.randint(MIN_TOKENS, MAX_TOKENS)
        x = rng.random()
        if x < disconnect_share:
            streams.append(Stream(i, prompt, max_tokens, "disconnect", after=rng.randint(0, max_tokens // 2)))
        elif x < disconnect_share + timeout_share:
            streams.append(Stream(i, prompt, max_tokens, "timeout", deadline=rng.uniform(0.5, timeout_max)))
        else:
            streams.append(Stream(i, prompt, max_tokens, "complete"))
    return streams


def soak(base, model, streams, seed):
    """All streams at once, each in its own thread; returns the wall time."""
    host, port = base.split("//")[1].split(":")
    threads = [threading.Thread(target=s.run, args=(host, int(port), model, seed), daemon=True) for s in streams]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.monotonic() - began


# ---------------------------------------------------------------------------------------------
# Checks


def settle(base, model, timeout):
    """Waits until no slot is processing and nothing is queued (or `timeout` s); returns the
    server's state then: leaked (busy) slots, queue, cache, KV per slot, active sequences."""
    deadline = time.monotonic() + timeout
    while True:
        slots = get_json(base, "/slots")
        busy = [s for s in slots["slots"] if s["is_processing"] or s["state"] != "idle"]
        queued = sum(slots["queued"].values())
        if (not busy and not queued) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    m = metrics(base)
    cache = slots["prompt_cache"].get(model, {})
    return {
        "leaked_sequences": len(busy),
        "busy_slots": busy,
        "queued": queued,
        "active_sequences_metric": m.get(f'minerva_active_sequences{{model="{model}"}}'),
        "queue_depth_metric": m.get(f'minerva_queue_depth{{model="{model}"}}'),
        "cache_bytes": cache.get("bytes"),
        "cache_budget_bytes": cache.get("budget_bytes"),
        "cache_entries": cache.get("entries"),
        "cache_bytes_metric": m.get(f'minerva_prompt_cache_bytes{{model="{model}"}}'),
        "max_kv_tokens": max((s["n_kv_tokens"] for s in slots["slots"]), default=0),
    }


def equality(streams, solo):
    """identical / near-tie / differs over the completed streams, and the details of the others."""
    counts = {"identical": 0, "near-tie": 0, "differs": 0}
    departures = []
    for s in streams:
        if s.outcome != "completed":
            continue
        ref, ref_finish = solo[s.prompt]
        ref = ref[: s.max_tokens]
        verdict, detail = greedy.compare(s.tokens, ref)
        counts[verdict] += 1
        if verdict != "identical":
            departures.append({"stream": s.i, "verdict": verdict, "prompt": s.prompt[1], "detail": detail,
                               "text": s.text, "solo": "".join(t["token"] for t in ref)})
    return counts, departures


def summarize(streams, wall):
    outcomes = {}
    for s in streams:
        outcomes[s.outcome] = outcomes.get(s.outcome, 0) + 1
    cached = sum(((s.usage or {}).get("prompt_tokens_details") or {}).get("cached_tokens") or 0 for s in streams)
    return {
        "streams": len(streams),
        "completed": outcomes.get("completed", 0),
        "disconnected": outcomes.get("disconnected", 0),
        "timed_out": outcomes.get("timed_out", 0),
        "refused": outcomes.get("refused", 0),
        "errors": outcomes.get("error", 0),
        "error_samples": [s.error for s in streams if s.outcome == "error"][:5],
        "planned": {k: sum(s.kind == k for s in streams) for k in ("complete", "disconnect", "timeout")},
        "generated_tokens": sum(len(s.tokens) for s in streams),
        "cached_prompt_tokens": cached,
        "duration_s": round(wall, 1),
    }


def check_state(name, state, ctx_size, failures):
    if state["leaked_sequences"]:
        failures.append(f"{name}: {state['leaked_sequences']} sequences still busy: {state['busy_slots']}")
    if state["queued"] or state["queue_depth_metric"]:
        failures.append(f"{name}: requests still queued ({state['queued']})")
    if state["active_sequences_metric"]:
        failures.append(f"{name}: minerva_active_sequences is {state['active_sequences_metric']}")
    if state["cache_bytes"] is None or state["cache_bytes"] > state["cache_budget_bytes"]:
        failures.append(f"{name}: prompt cache {state['cache_bytes']} bytes over its budget {state['cache_budget_bytes']}")
    if state["max_kv_tokens"] > ctx_size:
        failures.append(f"{name}: a slot holds {state['max_kv_tokens']} KV tokens, more than --ctx-size {ctx_size}")


# ---------------------------------------------------------------------------------------------
# The whole run


def run(base, model, streams=200, seed=1, ctx_size=1024, disconnect_share=0.15, timeout_share=0.15,
        rss_growth=0.05, settle_timeout=30, prompts=PROMPTS, log=print):
    """Solo answers, warm-up soak, measured soak and the checks against a running server.
    Returns (figures, failures); `failures` empty when every check passed."""
    rng = random.Random(seed)
    failures = []
    pids_before = worker_pids(base)
    t0 = time.monotonic()
    log(f"solo answers for {len(prompts)} prompts ...")
    solo, times = solo_answers(base, model, seed, prompts)
    solo_s = time.monotonic() - t0
    # Client deadlines fall anywhere in the soak's expected length: N streams, `parallel` at a
    # time, each about as long as a solo answer (the median: a busy machine makes outliers).
    parallel = len(get_json(base, "/slots")["slots"]) or 1
    timeout_max = max(2.0, statistics.median(times) * streams / parallel)
    figures = {"streams_per_soak": streams, "seed": seed, "prompts": len(prompts), "solo_s": round(solo_s, 1),
               "client_deadline_max_s": round(timeout_max, 1), "soaks": {}}
    rss = {"start": rss_mib(base_pids(base))}
    for name in ("warmup", "measured"):
        planned = plan(streams, rng, disconnect_share, timeout_share, timeout_max, prompts)
        log(f"{name} soak: {streams} streams ...")
        wall = soak(base, model, planned, seed)
        state = settle(base, model, settle_timeout)
        rss[name] = rss_mib(base_pids(base))
        counts, departures = equality(planned, solo)
        fig = summarize(planned, wall)
        fig.update(state={k: v for k, v in state.items() if k != "busy_slots"}, equality=counts,
                   departures=departures[:10], rss_mib=rss[name])
        figures["soaks"][name] = fig
        check_state(name, state, ctx_size, failures)
        if counts["differs"]:
            failures.append(f"{name}: {counts['differs']} completed streams differ from their solo answer "
                            f"beyond a near-tie: {[d for d in departures if d['verdict'] == 'differs'][:3]}")
        if fig["errors"]:
            failures.append(f"{name}: {fig['errors']} streams failed: {fig['error_samples']}")
        if fig["refused"]:
            failures.append(f"{name}: {fig['refused']} streams refused (503)")
        if fig["completed"] == 0:
            failures.append(f"{name}: no stream completed")
        log(f"  {fig['completed']} completed, {fig['disconnected']} disconnected, {fig['timed_out']} timed out, "
            f"{fig['refused']} refused, {fig['errors']} errors, {state['leaked_sequences']} leaked sequences, "
            f"{wall:.1f} s, RSS {rss[name]} MiB, equality {counts}")
    pids_after = worker_pids(base)
    if pids_after != pids_before:
        failures.append(f"the worker changed (crashed?): {pids_before} -> {pids_after}")
    growth = (rss["measured"] - rss["warmup"]) / rss["warmup"]
    figures["rss_mib"] = {**rss, "growth": round(growth, 4)}
    if growth >= rss_growth:
        failures.append(f"RSS grew {growth:.1%} in the measured soak ({rss['warmup']} -> {rss['measured']} MiB), "
                        f"limit {rss_growth:.0%}")
    figures["leaked_sequences"] = sum(f["state"]["leaked_sequences"] for f in figures["soaks"].values())
    figures["workers"] = {"before": pids_before, "after": pids_after}
    return figures, failures


_SERVER_PID = {}


def base_pids(base):
    """The server's pid (registered by `serve`, or found by its port) plus its workers'."""
    pids = list(worker_pids(base))
    if base in _SERVER_PID:
        pids.append(_SERVER_PID[base])
    return pids


def serve_cmd(binary, model_path, port, parallel, ctx_size, cache_ram, queue, threads=None):
    cmd = [binary, "serve", "--model", model_path, "--port", str(port), "--parallel", str(parallel),
           "--ctx-size", str(ctx_size), "--cache-ram", str(cache_ram), "--queue", str(queue),
           # No queue timeout: on a busy machine the last of 200 streams waits more than the
           # default 600 s, and a 503 then would be the machine's slowness, not a fault.
           "--queue-timeout", "0"]
    if threads:
        cmd += ["--threads", str(threads)]
    return cmd


class SoakServer(Server):
    """`minerva serve` over an empty store of its own, its pid registered for the RSS sums."""

    def __init__(self, binary, model_path, parallel, ctx_size, cache_ram, queue, log_path, threads=None):
        port = free_port()
        self.store = tempfile.mkdtemp(prefix="minerva-soak-store-")
        env = {**os.environ, "MINERVA_MODELS": self.store, "NO_COLOR": "1",
               "RUST_LOG": os.environ.get("RUST_LOG", "info,minerva_llama=debug,llama-cpp-2=warn")}
        super().__init__("minerva", serve_cmd(binary, model_path, port, parallel, ctx_size, cache_ram, queue, threads),
                         f"http://127.0.0.1:{port}", log_path=log_path, env=env, timeout=300)

    def __enter__(self):
        super().__enter__()
        _SERVER_PID[self.base] = self.proc.pid
        return self

    def __exit__(self, *exc):
        _SERVER_PID.pop(self.base, None)
        super().__exit__(*exc)
        shutil.rmtree(self.store, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minerva", default=os.environ.get("MINERVA_BIN"), help="the minerva binary (MINERVA_BIN)")
    p.add_argument("--model", default=os.environ.get("MINERVA_QWEN_GGUF"), help="GGUF file (MINERVA_QWEN_GGUF)")
    p.add_argument("--streams", type=int, default=200, help="concurrent streams per soak (default 200)")
    p.add_argument("--parallel", type=int, default=4)
    p.add_argument("--ctx-size", type=int, default=1024)
    p.add_argument("--cache-ram", type=int, default=32, help="MiB of prompt cache (small: the warm-up fills it)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--disconnects", type=float, default=0.15, help="share of streams that disconnect")
    p.add_argument("--timeouts", type=float, default=0.15, help="share of streams with a client deadline")
    p.add_argument("--rss-growth", type=float, default=0.05)
    p.add_argument("--settle", type=float, default=30, help="seconds the server may take to go idle")
    p.add_argument("--server-log", default=None, help="file for the server's output")
    p.add_argument("--json", default=None, help="write the figures here")
    args = p.parse_args()
    if not args.minerva or not args.model:
        sys.exit("--minerva and --model (or MINERVA_BIN and MINERVA_QWEN_GGUF) are required")
    log_path = args.server_log or os.path.join(tempfile.gettempdir(), f"minerva-soak-{os.getpid()}.log")
    began = time.monotonic()
    with SoakServer(args.minerva, args.model, args.parallel, args.ctx_size, args.cache_ram,
                    args.streams + 16, log_path, args.threads) as server:
        model = get_json(server.base, "/v1/models")["data"][0]["id"]
        figures, failures = run(server.base, model, args.streams, args.seed, args.ctx_size, args.disconnects,
                                args.timeouts, args.rss_growth, args.settle)
    figures.update(parallel=args.parallel, ctx_size=args.ctx_size, cache_ram_mib=args.cache_ram,
                   total_s=round(time.monotonic() - began, 1), server_log=log_path, failures=failures)
    print_figures(figures)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)
    sys.exit(1 if failures else 0)


def print_figures(f):
    print(f"\nsoak: {f['streams_per_soak']} streams per soak, --parallel {f.get('parallel')}, seed {f['seed']}")
    for name, s in f["soaks"].items():
        print(f"  {name:8} completed {s['completed']}, disconnected {s['disconnected']}, timed out {s['timed_out']}, "
              f"refused {s['refused']}, errors {s['errors']}, leaked sequences {s['state']['leaked_sequences']}, "
              f"cache {s['state']['cache_bytes']}/{s['state']['cache_budget_bytes']} B, "
              f"{s['duration_s']} s, equality {s['equality']}")
    r = f["rss_mib"]
    print(f"  RSS (server + workers): start {r['start']} MiB, after warm-up {r['warmup']} MiB, "
          f"after measured {r['measured']} MiB, growth {r['growth']:.2%}")
    print(f"  leaked sequences: {f['leaked_sequences']}; total {f.get('total_s')} s")
    for failure in f.get("failures", []):
        print(f"  FAILED: {failure}")
    print("  all checks passed" if not f.get("failures") else "")


if __name__ == "__main__":
    main()
