#!/usr/bin/env python3
"""Load benchmark for any OpenAI-compatible server: Minerva and the reference llama-server are
measured the same way, in interleaved rounds (each round starts llama-server, runs the chosen
scenarios, stops it, then does the same with Minerva), so a noisy machine's drift hits both.

  python3 scripts/bench/load.py --minerva target/release/minerva \\
      --llama-server ~/.cache/minerva/reference/build-0.3.36/bin/llama-server --model MODEL.gguf
  python3 scripts/bench/load.py --url http://127.0.0.1:11434 --scenario single,turn2 --rounds 1

Every request is a streamed /v1/chat/completions ("stream": true, "stream_options":
{"include_usage": true}), greedy (temperature 0), max_tokens 64 and "ignore_eos": true (a
llama-server extension; --no-ignore-eos leaves it out) so each one generates exactly 64 tokens.
At most C requests are in flight (a pool of C client threads, closed loop). Per request the
client records its start, the arrival time of every non-empty content delta (TTFT = first
delta - start; inter-token latencies = gaps between successive deltas), the completion tokens
(usage chunk if sent, else the number of deltas), the prompt / cached prompt tokens from usage,
and any HTTP error or exception (counted, never fatal; a 503 is an error with its status).

Per scenario: aggregate generated tokens/s = all completion tokens / wall time from the first
send to the last completion; TTFT and inter-token latency p50/p95 over the successful requests
(inter-token gaps pooled over all of them). Percentiles use linear interpolation between the
closest ranks (numpy's default "linear" method, Excel's PERCENTILE.INC). Across rounds the
medians per server are printed, and the ratio minerva/llama-server when both ran.

Scenarios (--scenario, comma-separated or repeated; default all):
  concurrency  short chats at concurrency 1, 4, 8, 16 (--concurrency), N = max(2C, 8) each;
               with --long also ~1,500-token prompts at the same concurrencies
  target-8x16  16 short chats at 8 concurrent streams
  mixed        2 long prompts among 6 short chats, submitted at once in the order
               S L S S L S S S with concurrency 8; TTFT reported for short and long apart
  single       4 short chats one at a time; also the median per-request generation rate
               (tokens - 1) / (last delta - first delta)
  shared-system 16 short chats at 8 concurrent streams that all share a ~1,000-token system
               prompt (one request computes it first); also the KV cells in use after the
               run, where the server reports them (Minerva's /slots `kv_cache`)
  turn2        a 2-turn conversation: turn 1 sends a ~1,500-token user message; turn 2 resends
               it plus turn 1's reply plus a short question; TTFT of both and turn2/turn1.
               --turn2-convs conversations per round, each a new one (turn 1 never cached)

Prompts are fixed text, identical for both servers: 16 one-sentence short chats; long prompts
are a fixed report paragraph set, rotated and cycled to ~1,500 tokens (measured once with the
first server's POST /tokenize), each with a distinct leading sentence so no two long prompts
share a prefix beyond the system prompt (a round number is part of it, so --url rounds against
one server do not hit its prompt cache either). Stdlib only.
"""
import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

from servers import Server, free_port

SYSTEM = "You are a helpful assistant. Answer clearly and concisely."

SHORT_CHATS = [
    "What is the capital of France, and why is it famous?",
    "Explain in one paragraph how a hash map works.",
    "Write a haiku about autumn leaves falling in a quiet park.",
    "Why is the sky blue during the day but red at sunset?",
    "Give me three tips for writing readable Python code.",
    "What is the difference between a process and a thread?",
    "Describe the water cycle to a ten-year-old.",
    "How do I reverse a linked list in place?",
    "Suggest a name for a small bakery that sells sourdough bread.",
    "What are the main causes of inflation in an economy?",
    "Explain what a closure is in JavaScript with a tiny example.",
    "List some healthy breakfast ideas that take under five minutes.",
    "How does public-key cryptography let strangers communicate securely?",
    "Summarize the plot of Romeo and Juliet in a few sentences.",
    "What should I check first when my laptop will not turn on?",
    "Translate 'good morning, how are you?' into Spanish and German.",
]

WARMUP = "Say hello in one short sentence."

# First words of the long prompts' leading sentences: distinct first tokens.
LEAD_WORDS = [
    "Alpha", "Bravo", "Charlie", "Delta", "Echo", "Foxtrot", "Golf", "Hotel", "India", "Juliet",
    "Kilo", "Lima", "Mike", "November", "Oscar", "Papa", "Quebec", "Romeo", "Sierra", "Tango",
    "Uniform", "Victor", "Whiskey", "Xray", "Yankee", "Zulu", "Amber", "Cobalt", "Crimson",
    "Emerald", "Indigo", "Scarlet",
]

REPORT_SENTENCES = [
    "The migration of the billing service to the new cluster began on a Monday and took eleven days.",
    "During the first week the team moved read traffic only, keeping every write on the old database.",
    "Latency at the ninety-fifth percentile rose from forty to ninety milliseconds on the second day.",
    "The cause was a connection pool sized for the old hardware, which had twice as many cores.",
    "After the pool was resized, latency returned to its previous level within an hour.",
    "On the fourth day a schema change locked the invoices table for almost six minutes.",
    "Customers saw failed payments during that window, and support received about two hundred tickets.",
    "The team added a rule that schema changes must run through the online migration tool.",
    "Write traffic was moved on the seventh day, one region at a time, starting with the smallest.",
    "Each region was watched for two hours before the next one was switched over.",
    "The largest region showed a slow memory leak in the queue consumer after the switch.",
    "Engineers traced the leak to a retry buffer that never released acknowledged messages.",
    "A patch was deployed the same evening, and memory use has been flat ever since.",
    "Monitoring dashboards were rebuilt so that each service shows its error budget on one page.",
    "The old cluster was kept running in read-only mode for three more days as a fallback.",
    "No rollback was needed, and the old machines were returned to the hardware pool afterwards.",
    "The total cost of the new cluster is about eighteen percent lower than that of the old one.",
    "Two risks remain open: the backup jobs still run on a single host, and alerts are noisy.",
    "The on-call rotation reported forty pages during the migration, most of them false alarms.",
    "A follow-up review will decide which alerts to delete and which thresholds to raise.",
    "Documentation for the new deployment process was written and reviewed by two other teams.",
    "New engineers can now set up a local copy of the service in less than twenty minutes.",
    "The next quarter will focus on moving the reporting jobs, which still read from the old replica.",
    "Management asked for a short written summary of lessons learned before the next migration.",
]

LONG_QUESTION = "\n\nSummarize the report above in three short bullet points."
TURN2_QUESTION = "Which of the open risks is the most serious, and what should be done first?"

SCENARIOS = ["concurrency", "target-8x16", "mixed", "single", "shared-system", "turn2"]


def long_text(uid, n_sentences):
    """A ~1,500-token report; `uid` picks the leading sentence and where the rotation starts."""
    lead = f"{LEAD_WORDS[uid % len(LEAD_WORDS)]} incident report number {uid}, for internal review only.\n\n"
    k = uid % len(REPORT_SENTENCES)
    parts = []
    for i in range(n_sentences):
        parts.append(REPORT_SENTENCES[(k + i) % len(REPORT_SENTENCES)])
        parts.append("\n\n" if i % 6 == 5 else " ")
    return lead + "".join(parts).rstrip() + LONG_QUESTION


def percentile(values, p):
    """Linear interpolation between closest ranks (numpy 'linear'); None when empty."""
    a = sorted(values)
    if not a:
        return None
    pos = (len(a) - 1) * p / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return a[lo] + (a[hi] - a[lo]) * (pos - lo)


def median(values):
    v = [x for x in values if x is not None]
    return statistics.median(v) if v else None


def post_json(url, body, timeout=600):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.load(r)


def tokenize(base, text):
    return post_json(base + "/tokenize", {"content": text})["tokens"]


def model_id(base, wanted=None):
    """`wanted` if given, else the only model the server lists (a server listing several needs
    --model-id: /v1/models lists them newest first, so the first is not the one meant)."""
    if wanted:
        return wanted
    with urllib.request.urlopen(base + "/v1/models", timeout=30) as r:
        ids = [m["id"] for m in json.load(r)["data"]]
    if len(ids) != 1:
        raise SystemExit(f"{base} serves {len(ids)} models ({', '.join(ids)}): name one with --model-id")
    return ids[0]


# ---------------------------------------------------------------------------------------------
# Client core


class Client:
    def __init__(self, base, model, max_tokens, ignore_eos, timeout):
        self.base, self.model = base, model
        self.max_tokens, self.ignore_eos, self.timeout = max_tokens, ignore_eos, timeout

    def chat(self, messages, max_tokens=None):
        """One streamed chat completion; returns its record, never raises."""
        body = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens or self.max_tokens,
            "temperature": 0,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.ignore_eos:
            body["ignore_eos"] = True
        data = json.dumps(body).encode()
        rec = {"start": None, "arrivals": [], "usage": None, "status": None, "error": None, "text": ""}
        parts = []
        req = urllib.request.Request(self.base + "/v1/chat/completions", data=data,
                                     headers={"content-type": "application/json"})
        rec["start"] = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                rec["status"] = r.status
                for raw in r:
                    now = time.perf_counter()
                    line = raw.decode("utf-8", "replace").strip()
                    if line.startswith("error:"):
                        rec["error"] = line[:300]
                        break
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    chunk = json.loads(payload)
                    if chunk.get("error"):
                        rec["error"] = "stream error: " + json.dumps(chunk["error"])[:300]
                        break
                    if chunk.get("usage"):
                        rec["usage"] = chunk["usage"]
                    for choice in chunk.get("choices") or []:
                        content = (choice.get("delta") or {}).get("content")
                        if content:
                            rec["arrivals"].append(now)
                            parts.append(content)
        except urllib.error.HTTPError as e:
            rec["status"] = e.code
            try:
                detail = e.read().decode("utf-8", "replace")[:200]
            except Exception:
                detail = ""
            rec["error"] = f"HTTP {e.code} {detail}".strip()
        except Exception as e:  # connection refused/reset, timeout, bad JSON...
            rec["error"] = f"{type(e).__name__}: {e}"
        rec["end"] = time.perf_counter()
        rec["text"] = "".join(parts)
        usage = rec["usage"] or {}
        rec["tokens"] = usage.get("completion_tokens", len(rec["arrivals"]))
        rec["prompt_tokens"] = usage.get("prompt_tokens")
        rec["cached_tokens"] = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
        rec["ttft"] = rec["arrivals"][0] - rec["start"] if rec["arrivals"] else None
        return rec

    def batch(self, jobs, concurrency):
        """Run (kind, messages) jobs with at most `concurrency` in flight, started in list order:
        `concurrency` client threads each take the next job as soon as their last one ends."""
        recs = [None] * len(jobs)
        next_job = iter(range(len(jobs)))
        lock = threading.Lock()

        def worker():
            while True:
                with lock:
                    i = next(next_job, None)
                if i is None:
                    return
                recs[i] = self.chat(jobs[i][1])

        # Daemon threads: on Ctrl-C / SIGTERM the main thread unwinds (stopping a managed server)
        # without waiting for requests in flight.
        threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(concurrency, len(jobs)))]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
        for i, ((kind, _), rec) in enumerate(zip(jobs, recs)):
            rec["kind"], rec["index"] = kind, i
        return recs


def summarize(recs, max_tokens, kinds=None):
    """Scenario numbers over `recs` (the wall time always spans the whole batch)."""
    t_first = min(r["start"] for r in recs)
    t_last = max(r["end"] for r in recs)
    sel = [r for r in recs if kinds is None or r["kind"] in kinds]
    ok = [r for r in sel if r["error"] is None and r["arrivals"]]
    ttfts = [r["ttft"] for r in ok]
    itls = [b - a for r in ok for a, b in zip(r["arrivals"], r["arrivals"][1:])]
    tokens = sum(r["tokens"] for r in sel)
    wall = t_last - t_first
    statuses = {}
    for r in sel:
        if r["error"] is not None:
            key = str(r["status"] or "exception")
            statuses[key] = statuses.get(key, 0) + 1
    return {
        "requests": len(sel),
        "errors": len(sel) - len(ok),
        "error_statuses": statuses,
        "early_stops": sum(1 for r in ok if r["tokens"] < max_tokens),
        "tokens": tokens,
        "wall_s": wall,
        "agg_tps": tokens / wall if wall > 0 else None,
        "ttft_p50": percentile(ttfts, 50),
        "ttft_p95": percentile(ttfts, 95),
        "itl_p50": percentile(itls, 50),
        "itl_p95": percentile(itls, 95),
        "prompt_tokens_median": median([r["prompt_tokens"] for r in ok]),
        "cached_tokens_total": sum(r["cached_tokens"] or 0 for r in ok),
    }


def raw_records(recs):
    """Records for --json: times relative to the batch's first send."""
    t0 = min(r["start"] for r in recs)
    out = []
    for r in recs:
        out.append({
            "kind": r.get("kind"), "index": r.get("index"),
            "start": round(r["start"] - t0, 5), "end": round(r["end"] - t0, 5),
            "ttft": None if r["ttft"] is None else round(r["ttft"], 5),
            "deltas": [round(a - r["start"], 5) for a in r["arrivals"]],
            "tokens": r["tokens"], "prompt_tokens": r["prompt_tokens"],
            "cached_tokens": r["cached_tokens"], "status": r["status"], "error": r["error"],
            "text_chars": len(r["text"]),
        })
    return out


def fmt(v, scale=1.0, spec="7.3f"):
    return format(v * scale, spec) if v is not None else " " * (int(spec.split(".")[0]) - 1) + "-"


def print_summary(label, s):
    err = f"err {s['errors']}"
    if s["error_statuses"]:
        err += " " + ",".join(f"{k}x{v}" for k, v in sorted(s["error_statuses"].items()))
    extra = f"  early-stop {s['early_stops']}" if s["early_stops"] else ""
    cached = f"  cached {s['cached_tokens_total']}" if s["cached_tokens_total"] else ""
    print(f"    {label:22s} n {s['requests']:3d}  {err:10s} agg {fmt(s['agg_tps'], spec='7.2f')} tok/s  "
          f"TTFT p50 {fmt(s['ttft_p50'])} p95 {fmt(s['ttft_p95'])} s  "
          f"ITL p50 {fmt(s['itl_p50'], 1000, '6.1f')} p95 {fmt(s['itl_p95'], 1000, '6.1f')} ms  "
          f"(tokens {s['tokens']}, wall {s['wall_s']:.2f} s{extra}{cached})", flush=True)


# ---------------------------------------------------------------------------------------------
# Scenarios


class Prompts:
    """Deterministic prompts: the same sequence for every server within a round."""

    def __init__(self, round_no, n_sentences):
        self.round_no, self.n_sentences, self.count = round_no, n_sentences, 0

    def short(self, i):
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": SHORT_CHATS[i % len(SHORT_CHATS)]}]

    def long(self):
        uid = self.round_no * 1000 + self.count
        self.count += 1
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": long_text(uid, self.n_sentences)}]


def scenario_concurrency(client, prompts, args, out):
    kinds = [("short", prompts.short)]
    if args.long:
        kinds.append(("long", lambda i: prompts.long()))
    for kind, make in kinds:
        for c in args.concurrency:
            n = max(2 * c, 8)
            recs = client.batch([(kind, make(i)) for i in range(n)], c)
            s = summarize(recs, args.max_tokens)
            label = f"{kind} c={c}"
            print_summary(label, s)
            out["scenarios"][f"concurrency/{kind}-c{c}"] = {"summary": s, "records": raw_records(recs)}
            out["metrics"][f"concurrency {kind} c={c}: agg tok/s"] = s["agg_tps"]
            out["metrics"][f"concurrency {kind} c={c}: TTFT p50 s"] = s["ttft_p50"]
            out["metrics"][f"concurrency {kind} c={c}: TTFT p95 s"] = s["ttft_p95"]
            out["metrics"][f"concurrency {kind} c={c}: ITL p50 ms"] = ms(s["itl_p50"])
            out["metrics"][f"concurrency {kind} c={c}: ITL p95 ms"] = ms(s["itl_p95"])


def ms(v):
    return v * 1000 if v is not None else None


def scenario_target(client, prompts, args, out):
    recs = client.batch([("short", prompts.short(i)) for i in range(16)], 8)
    s = summarize(recs, args.max_tokens)
    print_summary("target-8x16", s)
    out["scenarios"]["target-8x16"] = {"summary": s, "records": raw_records(recs)}
    out["metrics"]["target-8x16: agg tok/s"] = s["agg_tps"]
    out["metrics"]["target-8x16: TTFT p50 s"] = s["ttft_p50"]
    out["metrics"]["target-8x16: TTFT p95 s"] = s["ttft_p95"]
    out["metrics"]["target-8x16: ITL p50 ms"] = ms(s["itl_p50"])
    out["metrics"]["target-8x16: ITL p95 ms"] = ms(s["itl_p95"])


def scenario_mixed(client, prompts, args, out):
    jobs, n_short = [], 0
    for k in "SLSSLSSS":
        if k == "S":
            jobs.append(("short", prompts.short(n_short)))
            n_short += 1
        else:
            jobs.append(("long", prompts.long()))
    recs = client.batch(jobs, 8)
    s_all = summarize(recs, args.max_tokens)
    s_short = summarize(recs, args.max_tokens, {"short"})
    s_long = summarize(recs, args.max_tokens, {"long"})
    print_summary("mixed (all)", s_all)
    print_summary("mixed short", s_short)
    print_summary("mixed long", s_long)
    out["scenarios"]["mixed"] = {"summary": s_all, "short": s_short, "long": s_long, "records": raw_records(recs)}
    out["metrics"]["mixed: agg tok/s"] = s_all["agg_tps"]
    out["metrics"]["mixed: short TTFT p50 s"] = s_short["ttft_p50"]
    out["metrics"]["mixed: short TTFT p95 s"] = s_short["ttft_p95"]
    out["metrics"]["mixed: long TTFT p50 s"] = s_long["ttft_p50"]
    out["metrics"]["mixed: long TTFT p95 s"] = s_long["ttft_p95"]
    out["metrics"]["mixed: short ITL p95 ms"] = ms(s_short["itl_p95"])


def scenario_single(client, prompts, args, out):
    recs = client.batch([("short", prompts.short(i)) for i in range(4)], 1)
    s = summarize(recs, args.max_tokens)
    rates = [(len(r["arrivals"]) - 1) / (r["arrivals"][-1] - r["arrivals"][0])
             for r in recs if r["error"] is None and len(r["arrivals"]) >= 2 and r["arrivals"][-1] > r["arrivals"][0]]
    s["per_request_tps_median"] = median(rates)
    print_summary("single", s)
    print(f"    {'':22s} per-request generation rate median {fmt(s['per_request_tps_median'], spec='7.2f')} tok/s "
          f"({', '.join(f'{x:.2f}' for x in rates)})", flush=True)
    out["scenarios"]["single"] = {"summary": s, "records": raw_records(recs)}
    out["metrics"]["single: agg tok/s"] = s["agg_tps"]
    out["metrics"]["single: per-request tok/s"] = s["per_request_tps_median"]
    out["metrics"]["single: TTFT p50 s"] = s["ttft_p50"]
    out["metrics"]["single: ITL p50 ms"] = ms(s["itl_p50"])


def scenario_shared(client, prompts, args, out):
    uid = prompts.round_no * 1000 + 999
    system = long_text(uid, max(1, prompts.n_sentences * 2 // 3)).replace(LONG_QUESTION, "")
    first = client.chat([{"role": "system", "content": system}, {"role": "user", "content": WARMUP}])
    if first["error"]:
        print(f"    shared-system: first request failed: {first['error']}", flush=True)
    jobs = [("short", [{"role": "system", "content": system}, {"role": "user", "content": SHORT_CHATS[i]}])
            for i in range(16)]
    recs = client.batch(jobs, 8)
    s = summarize(recs, args.max_tokens)
    print_summary("shared-system", s)
    out["scenarios"]["shared-system"] = {"summary": s, "system_prompt_tokens": first["prompt_tokens"],
                                         "records": raw_records(recs)}
    out["metrics"]["shared-system: agg tok/s"] = s["agg_tps"]
    out["metrics"]["shared-system: TTFT p95 s"] = s["ttft_p95"]
    out["metrics"]["shared-system: ITL p95 ms"] = ms(s["itl_p95"])
    try:
        with urllib.request.urlopen(f"{client.base}/slots", timeout=30) as r:
            slots = json.load(r)
        # Minerva's /slots is an object with `kv_cache`; llama-server's is a list of slots.
        kv = slots.get("kv_cache", {}).get(client.model) if isinstance(slots, dict) else None
    except (urllib.error.URLError, OSError, ValueError):
        kv = None
    if kv:
        print(f"    {'':22s} KV cells used {kv['cells_used']} of {kv['cells']}", flush=True)
        out["metrics"]["shared-system: KV cells used"] = kv["cells_used"]


def scenario_turn2(client, prompts, args, out):
    convs = []
    for _ in range(args.turn2_convs):
        m1 = prompts.long()
        r1 = client.chat(m1)
        conv = {"turn1": r1, "turn2": None, "ratio": None}
        if r1["error"] is None and r1["ttft"] is not None:
            m2 = m1 + [{"role": "assistant", "content": r1["text"]}, {"role": "user", "content": TURN2_QUESTION}]
            r2 = client.chat(m2)
            conv["turn2"] = r2
            if r2["error"] is None and r2["ttft"] is not None:
                conv["ratio"] = r2["ttft"] / r1["ttft"]
        convs.append(conv)
        r2 = conv["turn2"] or {}
        print(f"    turn2 conv {len(convs)}           turn1 TTFT {fmt(r1['ttft'])} s (prompt {r1['prompt_tokens']}, "
              f"cached {r1['cached_tokens']})  turn2 TTFT {fmt(r2.get('ttft'))} s (prompt {r2.get('prompt_tokens')}, "
              f"cached {r2.get('cached_tokens')})  ratio {fmt(conv['ratio'], spec='6.3f')}"
              + (f"  errors: {r1['error'] or ''} {r2.get('error') or ''}" if r1["error"] or r2.get("error") else ""),
              flush=True)
    t1 = median([c["turn1"]["ttft"] for c in convs if c["turn1"]["error"] is None])
    t2 = median([c["turn2"]["ttft"] for c in convs if c["turn2"] and c["turn2"]["error"] is None])
    ratio = median([c["ratio"] for c in convs])
    errors = sum((c["turn1"]["error"] is not None) + (c["turn2"] is not None and c["turn2"]["error"] is not None)
                 for c in convs)
    out["scenarios"]["turn2"] = {
        "summary": {"turn1_ttft_median": t1, "turn2_ttft_median": t2, "ratio_median": ratio, "errors": errors},
        "conversations": [{"turn1": raw_records([c["turn1"]])[0],
                           "turn2": raw_records([c["turn2"]])[0] if c["turn2"] else None,
                           "ratio": c["ratio"]} for c in convs],
    }
    out["metrics"]["turn2: turn1 TTFT s"] = t1
    out["metrics"]["turn2: turn2 TTFT s"] = t2
    out["metrics"]["turn2: turn2/turn1 TTFT"] = ratio


RUNNERS = {
    "concurrency": scenario_concurrency,
    "target-8x16": scenario_target,
    "mixed": scenario_mixed,
    "single": scenario_single,
    "shared-system": scenario_shared,
    "turn2": scenario_turn2,
}

# Printed in the final table: (metric, better). All medians go to --json.
HEADLINE = [
    ("concurrency short c={c}: agg tok/s", "higher"),
    ("concurrency short c={c}: TTFT p95 s", "lower"),
    ("concurrency long c={c}: agg tok/s", "higher"),
    ("concurrency long c={c}: TTFT p95 s", "lower"),
    ("target-8x16: agg tok/s", "higher"),
    ("target-8x16: TTFT p95 s", "lower"),
    ("target-8x16: ITL p95 ms", "lower"),
    ("mixed: agg tok/s", "higher"),
    ("mixed: short TTFT p95 s", "lower"),
    ("mixed: long TTFT p95 s", "lower"),
    ("single: agg tok/s", "higher"),
    ("single: per-request tok/s", "higher"),
    ("shared-system: agg tok/s", "higher"),
    ("shared-system: TTFT p95 s", "lower"),
    ("shared-system: KV cells used", "lower"),
    ("turn2: turn1 TTFT s", "lower"),
    ("turn2: turn2 TTFT s", "lower"),
    ("turn2: turn2/turn1 TTFT", "lower"),
]


def run_scenarios(base, args, round_no, n_sentences):
    client = Client(base, model_id(base, args.model_id), args.max_tokens, args.ignore_eos, args.timeout)
    warm = client.chat([{"role": "system", "content": SYSTEM}, {"role": "user", "content": WARMUP}])
    if warm["error"]:
        print(f"    warm-up failed: {warm['error']}", flush=True)
    elif warm["tokens"] < args.max_tokens:
        print(f"    note: warm-up generated {warm['tokens']} < {args.max_tokens} tokens "
              "(ignore_eos not honoured?)", flush=True)
    prompts = Prompts(round_no, n_sentences)
    out = {"model_id": client.model, "scenarios": {}, "metrics": {}}
    for name in args.scenario:
        RUNNERS[name](client, prompts, args, out)
    return out


def calibrate(base, target):
    """Sentences of long_text that make a user message of about `target` tokens."""
    c0 = len(tokenize(base, long_text(0, 0)))
    c100 = len(tokenize(base, long_text(0, 100)))
    per = (c100 - c0) / 100
    n = max(1, round((target - c0) / per))
    return n


def headline_rows(medians, concurrency):
    rows = []
    for metric, better in HEADLINE:
        keys = [metric.format(c=c) for c in concurrency] if "{c}" in metric else [metric]
        rows += [(k, better) for k in keys if any(k in m for m in medians.values())]
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minerva", help="Minerva binary (managed: started and stopped each round)")
    ap.add_argument("--llama-server", help="reference llama-server binary (managed)")
    ap.add_argument("--baseline", help="another Minerva binary (managed), e.g. an older build; the ratio is "
                                       "minerva / baseline when no --llama-server runs")
    ap.add_argument("--model", help="GGUF file for the managed servers")
    ap.add_argument("--url", help="an already-running server to measure instead (no process management)")
    ap.add_argument("--model-id", help="the model to ask for (default: the only one the server lists; "
                                       "managed Minerva servers get an empty models directory of their own)")
    ap.add_argument("--name", default="server", help="label for --url results (default: server)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--ctx", type=int, default=4096, help="per-sequence context (llama-server gets -c CTX*P)")
    ap.add_argument("--parallel", type=int, default=8, help="slots / sequences decoded together")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--scenario", action="append",
                    help=f"comma-separated, may repeat: {', '.join(SCENARIOS)} (default: all)")
    ap.add_argument("--concurrency", default="1,4,8,16", help="levels for the concurrency scenario")
    ap.add_argument("--long", action="store_true", help="concurrency scenario: also ~1,500-token prompts")
    ap.add_argument("--long-tokens", type=int, default=1500, help="target size of a long user message")
    ap.add_argument("--turn2-convs", type=int, default=2, help="conversations per round in turn2")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--ignore-eos", action=argparse.BooleanOptionalAction, default=True,
                    help="send \"ignore_eos\": true (default: on)")
    ap.add_argument("--timeout", type=float, default=600, help="per-request timeout, seconds")
    ap.add_argument("--ref-arg", action="append", default=[], metavar="ARG",
                    help="extra llama-server argument (repeat; use --ref-arg=--flag for dashes)")
    ap.add_argument("--minerva-arg", action="append", default=[], metavar="ARG",
                    help="extra Minerva argument (repeat; use --minerva-arg=--flag for dashes)")
    ap.add_argument("--server-log", metavar="DIR", help="append each server's output to DIR/NAME.log")
    ap.add_argument("--json", metavar="FILE", help="write config, raw per-request results and medians")
    ap.add_argument("--dry-run", action="store_true", help="print the server commands and exit")
    args = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C, so managed servers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    args.scenario = [s.strip() for v in (args.scenario or [",".join(SCENARIOS)]) for s in v.split(",") if s.strip()]
    for s in args.scenario:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s!r}; choose from {', '.join(SCENARIOS)}")
    args.concurrency = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.url and (args.minerva or args.llama_server or args.baseline):
        ap.error("--url measures a running server; leave out --minerva/--llama-server/--baseline")
    if not args.url and not (args.minerva or args.llama_server or args.baseline):
        ap.error("give --minerva, --baseline and/or --llama-server (with --model), or --url")
    if not args.url and not args.model:
        ap.error("--model is required for managed servers")
    if args.server_log:
        os.makedirs(args.server_log, exist_ok=True)

    t = str(args.threads)
    servers = []  # (name, make_cmd(port) or None)
    if args.url:
        servers.append((args.name, None))
    if args.llama_server:
        def ref_cmd(port):
            return [args.llama_server, "-m", args.model, "--host", "127.0.0.1", "--port", str(port),
                    "-c", str(args.ctx * args.parallel), "-np", str(args.parallel), "-t", t, "-tb", t,
                    "-b", "2048", "-ub", "512", "--flash-attn", "auto", "--no-webui"] + args.ref_arg
        servers.append(("llama-server", ref_cmd))
    for name, binary in [("baseline", args.baseline), ("minerva", args.minerva)]:
        if binary:
            servers.append((name, minerva_cmd(binary, args, t)))

    print(f"scenarios {', '.join(args.scenario)}; {args.rounds} round(s); max_tokens {args.max_tokens}, "
          f"ignore_eos {'on' if args.ignore_eos else 'off'}, greedy, streamed chat completions")
    if not args.url:
        print(f"model {args.model}, threads {t}, per-sequence ctx {args.ctx}, parallel {args.parallel}")
        for name, mk in servers:
            print(f"  {name}: {' '.join(mk(0)).replace(' --port 0', ' --port PORT')}")
    if args.dry_run:
        return

    results = {name: [] for name, _ in servers}
    long_info = {"sentences": None, "tokens": {}}
    for r in range(args.rounds):
        for name, mk in servers:
            load = os.getloadavg()[0]
            print(f"round {r + 1}/{args.rounds}  {name}  (load average {load:.2f} on {os.cpu_count()} cores)", flush=True)
            if mk is None:
                base = args.url.rstrip("/")
                ctx = _Null()
            else:
                port = free_port()
                base = f"http://127.0.0.1:{port}"
                log = os.path.join(args.server_log, f"{name}.log") if args.server_log else None
                # A managed Minerva serves --model alone: its own empty models directory, so the
                # user's stored models are not listed beside it.
                env = {**os.environ, "MINERVA_MODELS": tempfile.mkdtemp(prefix="load-bench-")} \
                    if name != "llama-server" else None
                ctx = Server(name, mk(port), base, log, env=env)
            with ctx:
                if long_info["sentences"] is None:
                    long_info["sentences"] = calibrate(base, args.long_tokens)
                if name not in long_info["tokens"]:
                    n = len(tokenize(base, long_text(0, long_info["sentences"])))
                    long_info["tokens"][name] = n
                    print(f"    long user message: {long_info['sentences']} sentences = {n} tokens by {name}'s /tokenize",
                          flush=True)
                res = run_scenarios(base, args, r, long_info["sentences"])
            res["round"] = r
            res["loadavg_before"] = load
            results[name].append(res)

    medians = {name: {} for name in results}
    for name, rounds in results.items():
        keys = []
        for res in rounds:
            keys += [k for k in res["metrics"] if k not in keys]
        for k in keys:
            medians[name][k] = median([res["metrics"].get(k) for res in rounds])

    names = list(results)
    other = "llama-server" if "llama-server" in medians else "baseline"
    both = other in medians and "minerva" in medians
    print(f"\nmedians over {args.rounds} round(s)" + (f"; ratio = minerva / {other}" if both else ""))
    header = f"  {'metric':40s}" + "".join(f"{n:>14s}" for n in names) + (f"{'ratio':>9s}  better" if both else "")
    print(header)
    ratios = {}
    for k, better in headline_rows(medians, args.concurrency):
        line = f"  {k:40s}" + "".join(f"{fmt(medians[n].get(k), spec='14.3f')}" for n in names)
        if both:
            a, b = medians["minerva"].get(k), medians[other].get(k)
            ratio = a / b if a is not None and b else None
            line += f"{fmt(ratio, spec='9.3f')}  {better}"
        print(line)
    if both:
        for k in medians["minerva"]:
            a, b = medians["minerva"].get(k), medians[other].get(k)
            ratios[k] = a / b if a is not None and b else None

    if args.json:
        cfg = {k: v for k, v in vars(args).items()}
        with open(args.json, "w") as f:
            json.dump({"config": cfg, "long_prompt": long_info, "rounds": results, "medians": medians,
                       f"ratios_minerva_over_{other.replace('-', '_')}": ratios}, f, indent=1)
        print(f"wrote {args.json}")


def minerva_cmd(binary, args, threads):
    """The command line of a managed Minerva server on a port."""
    help_text = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True).stdout
    has_parallel = "--parallel" in help_text
    if not has_parallel:
        print(f"warning: {binary} has no --parallel; it runs without (one sequence at a time)")

    def cmd(port):
        line = [binary, "serve", "--model", args.model, "--port", str(port), "--ctx-size", str(args.ctx),
                "--threads", threads]
        if has_parallel:
            line += ["--parallel", str(args.parallel)]
        return line + args.minerva_arg
    return cmd


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
