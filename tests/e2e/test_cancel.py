"""A client that goes away stops its generation in the engine, not just the forwarding."""
import re
import time

from conftest import MODEL_ID


def cancelled_counts(log):
    return [int(n) for n in re.findall(r"cancelled seq=\d+ generated=(\d+)", log.text())]


def test_disconnect_mid_stream_stops_generation(http, log):
    before = len(cancelled_counts(log))
    body = {
        "model": MODEL_ID,
        "messages": [{"role": "user", "content": "Write a very long essay about the history of Rome."}],
        "max_tokens": 1500,
        "temperature": 0,
        "stream": True,
    }
    with http.stream("POST", "/v1/chat/completions", json=body) as r:
        assert r.status_code == 200
        lines = 0
        for line in r.iter_lines():
            if line.startswith("data: "):
                lines += 1
            if lines >= 5:
                break
    # The response is closed: the engine must notice within a step and stop.
    deadline = time.time() + 30
    while time.time() < deadline and len(cancelled_counts(log)) == before:
        time.sleep(0.1)
    counts = cancelled_counts(log)
    assert len(counts) > before, "the generation was not cancelled"
    assert counts[-1] < 100, f"stopped only after {counts[-1]} tokens"
    # /slots shows the sequence freed (published at the context thread's next step).
    deadline = time.time() + 5
    while True:
        slots = http.get("/slots").json()
        if not any(s["is_processing"] for s in slots["slots"]) or time.time() > deadline:
            break
        time.sleep(0.05)
    assert not any(s["is_processing"] for s in slots["slots"]), slots
    assert slots["queued"] == {MODEL_ID: 0}
    # The model is free again: a new request completes normally.
    r = http.post("/v1/chat/completions", json={**body, "stream": False, "max_tokens": 4})
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] == 4
