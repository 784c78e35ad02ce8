"""`GET /openapi.json` describes the API, and schemathesis, a property-based API fuzzer, finds no
5xx, no undocumented status, content type or body shape in it, and leaves the server serving.

The fuzzed server is contained: its own empty models directory, the Qwen GGUF given with
`--model` (outside the store, so pull/delete/copy cannot touch it), `--n-predict 4` so no request
generates more than four tokens, and `HF_ENDPOINT` pointing at a local stand-in of the hub that
holds nothing, since schemathesis calls `/api/pull` with whatever names it makes up.

MINERVA_SCHEMATHESIS_EXAMPLES (default 5) sets examples per operation; the seed is fixed.
"""
import json
import os
import subprocess
import sys

import httpx
import pytest

from conftest import LOG_DIR, MODEL_ID, _start_server, _stop_server

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMATHESIS = os.path.join(os.path.dirname(sys.executable), "schemathesis")
SEED = 20261130
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
])


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openapi")
    (tmp / "hub-root").mkdir()
    hub = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "hub.py"), "--root", str(tmp / "hub-root"), "--port", "0",
         "--log", str(tmp / "hub.log")],
        stdout=subprocess.PIPE, text=True,
    )
    line = hub.stdout.readline()
    assert line.startswith("PORT "), f"hub.py said {line!r}"
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{int(line.split()[1])}"}
    proc, base, log = _start_server(
        ["--n-predict", "4", "--no-default-model"],
        os.path.join(LOG_DIR, "minerva-openapi-{port}.log"),
        store=str(tmp / "models"), env=env,
    )
    yield base, tmp, log.name
    _stop_server(proc, log)
    hub.terminate()
    hub.wait(timeout=10)


def _spec(base):
    r = httpx.get(f"{base}/openapi.json", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


def test_the_description_covers_every_api(fuzzed):
    base, _, _ = fuzzed
    spec = _spec(base)
    assert spec["openapi"].startswith("3.1")
    paths = spec["paths"]
    for path, method in [
        ("/v1/chat/completions", "post"), ("/v1/completions", "post"), ("/v1/embeddings", "post"),
        ("/v1/responses", "post"), ("/v1/messages", "post"), ("/api/chat", "post"),
        ("/api/generate", "post"), ("/api/pull", "post"), ("/api/delete", "delete"),
        ("/api/tags", "get"), ("/v1/models/{model}", "get"), ("/tokenize", "post"),
    ]:
        assert method in paths[path], (path, method)
        # Every operation documents its errors, in its API's own shape.
        error = paths[path][method]["responses"]["default"]["content"]["application/json"]["schema"]
        want = ("ollama.ErrorBody" if path.startswith("/api/")
                else "anthropic.ErrorBody" if path.startswith("/v1/messages") else "ErrorBody")
        assert error["$ref"] == f"#/components/schemas/{want}", path
    # The sampling fields a chat request reads from the same object are in its schema.
    chat = spec["components"]["schemas"]["ChatCompletionRequest"]
    assert {"$ref": "#/components/schemas/SamplingFields"} in chat["allOf"]
    assert "max_tokens" in spec["components"]["schemas"]["SamplingFields"]["properties"]
    # Every documented path is routed: none answers the "no route" 404.
    for path, item in paths.items():
        for method in item:
            url = base + path.replace("{model}", MODEL_ID).replace("{id}", "resp_none")
            r = httpx.request(method.upper(), url, json={"model": "no-such-model"}, timeout=60)
            assert "no route for" not in r.text, (method, path, r.text)


def _contained_spec(base, tmp):
    """The served description with every request's `model` narrowed to the served model, so that
    generated requests reach the engine instead of stopping at a 404 (negative cases still make
    up other names)."""
    spec = _spec(base)

    def narrow(schema):
        if isinstance(schema, dict):
            model = schema.get("properties", {}).get("model")
            if isinstance(model, dict) and "string" in json.dumps(model.get("type")):
                schema["properties"]["model"] = {"type": "string", "enum": [MODEL_ID]}
            for value in schema.values():
                narrow(value)
        elif isinstance(schema, list):
            for value in schema:
                narrow(value)

    narrow(spec["components"]["schemas"])
    path = tmp / "openapi.json"
    path.write_text(json.dumps(spec))
    return path


def test_schemathesis_finds_no_server_error_and_nothing_undocumented(fuzzed):
    base, tmp, log_path = fuzzed
    spec = _contained_spec(base, tmp)
    examples = os.environ.get("MINERVA_SCHEMATHESIS_EXAMPLES", "5")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "PYTHONPATH": HERE}
    run = subprocess.run(
        [SCHEMATHESIS, "run", str(spec), "--url", base, "--checks", CHECKS,
         "--max-examples", examples, "--seed", str(SEED), "--phases", "examples,coverage,fuzzing",
         "--workers", "1", "--request-timeout", "120", "--generation-database", "none",
         "--no-color", "--report", "junit", "--report-dir", str(tmp / "report")],
        capture_output=True, text=True, env=env, timeout=1500,
    )
    summary = run.stdout[-6000:]
    # The figures (operations, cases generated, failures) stay in the log directory.
    with open(os.path.join(LOG_DIR, "minerva-schemathesis-summary.txt"), "w") as f:
        f.write(summary)
    assert run.returncode == 0, f"schemathesis failed (server log {log_path}):\n{summary}\n{run.stderr[-3000:]}"
    assert " passed" in summary and "failed" not in summary.split("SUMMARY")[-1], summary
    # Still serving, and still answering right.
    assert httpx.get(f"{base}/health", timeout=10).status_code == 200
    r = httpx.post(f"{base}/v1/chat/completions", timeout=120, json={
        "model": MODEL_ID, "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 100,
    })
    assert r.status_code == 200, r.text
    # `--n-predict 4` capped the request's 100.
    assert r.json()["usage"]["completion_tokens"] <= 4
    slots = httpx.get(f"{base}/slots", timeout=10).json()
    assert not any(s["is_processing"] for s in slots["slots"]), slots


def test_every_streamed_line_and_event_matches_the_description(fuzzed):
    """Schemathesis checks one line of an NDJSON answer; here every line of an Ollama chat stream
    and every event of an OpenAI chat stream is checked against the served description."""
    import jsonschema

    base, _, _ = fuzzed
    spec = _spec(base)

    def validator(path, media):
        schema = spec["paths"][path]["post"]["responses"]["200"]["content"][media]["schema"]
        return jsonschema.Draft202012Validator({**schema, "components": spec["components"]})

    lines = validator("/api/chat", "application/x-ndjson")
    with httpx.stream("POST", f"{base}/api/chat", timeout=120, json={
        "model": MODEL_ID, "messages": [{"role": "user", "content": "Say hello"}],
        "options": {"num_predict": 3},
    }) as r:
        seen = [json.loads(line) for line in r.iter_lines() if line.strip()]
    assert len(seen) >= 2 and seen[-1]["done"] is True
    for line in seen:
        lines.validate(line)
    events = validator("/v1/chat/completions", "text/event-stream")
    data_schema = events.schema["properties"]["data"]["else"]["contentSchema"]
    chunks = jsonschema.Draft202012Validator({**data_schema, "components": spec["components"]})
    with httpx.stream("POST", f"{base}/v1/chat/completions", timeout=120, json={
        "model": MODEL_ID, "messages": [{"role": "user", "content": "Say hello"}], "stream": True,
        "stream_options": {"include_usage": True},
    }) as r:
        data = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    for d in data[:-1]:
        events.validate({"data": d})
        chunks.validate(json.loads(d))
