"""Shutting down: SIGTERM drains (no new requests, streams go on, then end with an error event at
`--shutdown-timeout`), the process exits and leaves no worker behind — also when killed with
SIGKILL.
"""
import json
import os
import signal
import subprocess
import threading
import time

import httpx

from conftest import MODEL_ID, _free_port, _required_env

LONG = {"model": MODEL_ID, "max_tokens": 2000, "ignore_eos": True, "temperature": 0,
        "messages": [{"role": "user", "content": "Count to a thousand."}]}


def start(tmp_path, *args):
    port = _free_port()
    log = open(tmp_path / f"server-{port}.log", "wb")
    proc = subprocess.Popen([_required_env("MINERVA_BIN"), "serve", "--model", _required_env("MINERVA_QWEN_GGUF"),
                             "--port", str(port), "--ctx-size", "4096", *args],
                            stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "MINERVA_MODELS": str(tmp_path / "store"), "RUST_LOG": "info"})
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        assert proc.poll() is None, (tmp_path / f"server-{port}.log").read_text()
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        assert time.time() < deadline
        time.sleep(0.2)


def workers_of(pid):
    """The worker processes a server started (their socket lives in /tmp/minerva-PID-...)."""
    out = subprocess.run(["pgrep", "-f", f"minerva-{pid}-"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def read_sse(base, lines, started):
    try:
        with httpx.stream("POST", f"{base}/v1/chat/completions", json={**LONG, "stream": True}, timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    lines.append(line[6:])
                    started.set()
    except httpx.TransportError as e:  # the server was killed
        lines.append(f"transport error: {e}")


def read_ndjson(base, lines, started):
    body = {"model": MODEL_ID, "messages": LONG["messages"], "stream": True,
            "options": {"num_predict": 2000, "temperature": 0}}
    with httpx.stream("POST", f"{base}/api/chat", json=body, timeout=120) as r:
        for line in r.iter_lines():
            if line:
                lines.append(line)
                started.set()


def read_anthropic(base, lines, started):
    body = {"model": MODEL_ID, "messages": LONG["messages"], "stream": True, "max_tokens": 2000,
            "temperature": 0}
    with httpx.stream("POST", f"{base}/v1/messages", json=body, timeout=120) as r:
        for line in r.iter_lines():
            if line:
                lines.append(line)
                if "text_delta" in line:
                    started.set()


def test_sigterm_drains_then_ends_streams_with_an_error(tmp_path):
    proc, base = start(tmp_path, "--shutdown-timeout", "2")
    assert workers_of(proc.pid), "a worker runs the model"
    sse, ndjson, messages = [], [], []
    events = [threading.Event(), threading.Event(), threading.Event()]
    threads = [threading.Thread(target=read_sse, args=(base, sse, events[0])),
               threading.Thread(target=read_ndjson, args=(base, ndjson, events[1])),
               threading.Thread(target=read_anthropic, args=(base, messages, events[2]))]
    for t in threads:
        t.start()
    for e in events:
        assert e.wait(60), "both streams started"
    signaled = time.time()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    # New requests are refused while draining (or find the port closed).
    try:
        r = httpx.get(f"{base}/v1/models", timeout=5)
        assert r.status_code == 503 and r.json()["error"]["code"] == "shutting_down"
    except httpx.TransportError:
        pass
    # The streams went on while draining, then ended with an error event.
    for t in threads:
        t.join(30)
        assert not t.is_alive()
    assert json.loads(sse[-1])["error"]["code"] == "shutting_down", sse[-3:]
    assert "shutting down" in json.loads(ndjson[-1])["error"], ndjson[-3:]
    assert messages[-2] == "event: error", messages[-3:]
    assert json.loads(messages[-1][6:])["error"]["type"] == "overloaded_error"
    assert len(sse) > 5 and len(ndjson) > 5
    assert proc.wait(30) == 0
    assert time.time() - signaled < 20
    time.sleep(1)
    assert workers_of(proc.pid) == []


def test_sigkill_leaves_no_worker(tmp_path):
    proc, base = start(tmp_path)
    workers = workers_of(proc.pid)
    assert workers
    lines, started = [], threading.Event()
    t = threading.Thread(target=read_sse, args=(base, lines, started), daemon=True)
    t.start()
    assert started.wait(60)
    proc.kill()
    proc.wait(10)
    deadline = time.time() + 15
    while workers_of(proc.pid) and time.time() < deadline:
        time.sleep(0.2)
    assert workers_of(proc.pid) == [], "the worker exits when its server is gone"
