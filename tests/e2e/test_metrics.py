"""GET /metrics: Prometheus text with requests, tokens, gauges and latency histograms."""
import re

from conftest import MODEL_ID


def parse(text):
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def test_metrics_count_requests_tokens_and_latencies(http):
    before = parse(http.get("/metrics").text)
    ok = http.post(
        "/v1/chat/completions",
        json={"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5, "temperature": 0},
    )
    assert ok.status_code == 200
    bad = http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": []})
    assert bad.status_code == 400
    r = http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    after = parse(r.text)
    key = 'minerva_requests_total{path="/v1/chat/completions",status="200"}'
    assert after[key] == before.get(key, 0) + 1
    key400 = 'minerva_requests_total{path="/v1/chat/completions",status="400"}'
    assert after[key400] == before.get(key400, 0) + 1
    usage = ok.json()["usage"]
    assert after["minerva_generated_tokens_total"] - before.get("minerva_generated_tokens_total", 0) == usage["completion_tokens"]
    assert after["minerva_prompt_tokens_total"] - before.get("minerva_prompt_tokens_total", 0) == usage["prompt_tokens"]
    for h in ("minerva_time_to_first_token_seconds", "minerva_request_duration_seconds"):
        assert after[f"{h}_count"] == before.get(f"{h}_count", 0) + 1
        buckets = [(k, v) for k, v in after.items() if k.startswith(f"{h}_bucket")]
        values = [v for _, v in buckets]
        assert values == sorted(values), "cumulative buckets"
        assert after[f'{h}_bucket{{le="+Inf"}}'] == after[f"{h}_count"]
    assert after["minerva_inter_token_latency_seconds_count"] >= before.get("minerva_inter_token_latency_seconds_count", 0) + 1
    assert after[f'minerva_queue_depth{{model="{MODEL_ID}"}}'] == 0
    assert after[f'minerva_active_sequences{{model="{MODEL_ID}"}}'] == 0
    assert re.search(r"# TYPE minerva_time_to_first_token_seconds histogram", r.text)
