"""Hugging Face models through the MLX backend, beside a GGUF model on llama.cpp: what is MLX's
own: listings and /api/ps after a load, /tokenize equal to the GGUF model's, a dropped stream, a
worker killed mid-stream, a stopped worker killed by its health check, queued requests,
unloading, no Python with mlx-lm, and `minerva mlx setup`'s managed environment.

The OpenAI conformance tests (chat and completions, stream and not, stop strings, max_tokens,
usage, UTF-8, seeds, penalties, logit_bias, errors, and the 400s for what MLX cannot do: logprobs,
response_format) run on both backends in test_openai.py and test_errors.py.

The shared server runs with a 5 s health timeout (30 s by default): the workers of every test
on it, busy computing prompts and tokens, must keep answering health checks within it.

Needs MINERVA_QWEN_HF (scripts/fixtures/gguf_to_hf.py of MINERVA_QWEN_GGUF) and MINERVA_PYTHON
(a Python with mlx-lm), which scripts/test.sh sets. MLX on a Linux CPU decodes a few tokens a
second: every generation here is a few tokens.
"""
import os
import re
import shutil
import signal
import subprocess
import time

import httpx
import pytest

from conftest import (LOG_DIR, MLX_HEALTH_TIMEOUT as HEALTH_TIMEOUT, MODEL_ID, _required_env,
                      _start_server, _stop_server, hf_dir, hf_model_id)


def _servers(python, env=None):
    """A server of the GGUF model and the HF directory, run by `python` (None: found)."""
    env = {"MINERVA_PYTHON": "", "MINERVA_MLX_HEALTH_TIMEOUT": str(HEALTH_TIMEOUT), **(env or {})}
    python_args = ["--python", python] if python else []
    proc, base, log = _start_server(["--model", hf_dir(), *python_args],
                                    os.path.join(LOG_DIR, "minerva-e2e-mlx-{port}.log"), env=env)
    return proc, base, log, hf_model_id()


@pytest.fixture(scope="module")
def mlx(both_server, both_http):
    """The session's server with both models (conftest's `both_server`): an httpx client, the
    HF model's id, the server's log file."""
    return both_http, hf_model_id(), both_server.log_path


def chat(client, model, content, **extra):
    body = {"model": model, "messages": [{"role": "user", "content": content}],
            "temperature": 0, **extra}
    return client.post("/v1/chat/completions", json=body)


def test_listings_name_each_backend(mlx):
    client, hf_id, _ = mlx
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert models[MODEL_ID]["backend"] == "llama.cpp"
    assert models[hf_id]["backend"] == "mlx"
    assert chat(client, hf_id, "Hi", max_tokens=1).status_code == 200
    ps = {m["name"]: m for m in client.get("/api/ps").json()["models"]}
    assert hf_id in ps
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert models[hf_id]["backend"] == "mlx" and models[hf_id]["state"] == "loaded"


def test_tokenize_equals_the_gguf_models(mlx):
    client, hf_id, _ = mlx
    for text in ["Hello world", "fn main() { println!(\"🎉\"); }", "你好，世界", "<|im_start|>user"]:
        ours = client.post("/tokenize", json={"model": hf_id, "content": text}).json()["tokens"]
        theirs = client.post("/tokenize", json={"model": MODEL_ID, "content": text}).json()["tokens"]
        assert ours == theirs, text


def test_a_dropped_stream_stops_the_worker(mlx):
    client, hf_id, log_path = mlx

    def cancelled():
        return re.findall(r"cancelled after (\d+) tokens", open(log_path).read())

    # The server is shared with other test modules: only a cancellation logged after this one counts.
    before = len(cancelled())
    body = {"model": hf_id, "messages": [{"role": "user", "content": "Count to 100."}],
            "temperature": 0, "max_tokens": 200, "stream": True}
    with client.stream("POST", "/v1/chat/completions", json=body) as s:
        for n, line in enumerate(l for l in s.iter_lines() if l.startswith("data: ")):
            if n >= 2:
                break
    deadline = time.time() + 30
    found = []
    while time.time() < deadline and not found:
        found = cancelled()[before:]
        time.sleep(0.2)
    assert found and int(found[-1]) < 20, found


def _model(client, model_id):
    return {m["id"]: m for m in client.get("/v1/models").json()["data"]}[model_id]


def test_a_killed_worker_ends_its_stream_and_the_next_request_reloads(mlx):
    client, hf_id, _ = mlx
    assert chat(client, hf_id, "Hi", max_tokens=1).status_code == 200
    pid = _model(client, hf_id)["meta"]["pid"]
    assert pid
    body = {"model": hf_id, "messages": [{"role": "user", "content": "Count to 100."}],
            "temperature": 0, "max_tokens": 200, "stream": True}
    errored = False
    with client.stream("POST", "/v1/chat/completions", json=body) as s:
        n = 0
        for line in s.iter_lines():
            if line.startswith("data: "):
                n += 1
                if n == 2:
                    os.kill(pid, signal.SIGKILL)
                if '"error"' in line:
                    errored = True
    assert errored, "the stream did not report the worker's death"
    r = chat(client, hf_id, "Hi", max_tokens=2)
    assert r.status_code == 200, r.text
    new_pid = _model(client, hf_id)["meta"]["pid"]
    assert new_pid and new_pid != pid


def test_a_stopped_worker_is_killed_by_its_health_check_and_the_next_request_reloads(mlx):
    client, hf_id, _ = mlx
    assert chat(client, hf_id, "Hi", max_tokens=1).status_code == 200
    pid = _model(client, hf_id)["meta"]["pid"]
    assert pid
    os.kill(pid, signal.SIGSTOP)  # alive, but it answers nothing
    try:
        started = time.time()
        r = chat(client, hf_id, "Hi", max_tokens=2)
        waited = time.time() - started
        assert r.status_code == 500, r.text
        expected = (f"the MLX worker (pid {pid}) stopped answering health checks for "
                    f"{HEALTH_TIMEOUT} s; it was killed")
        assert expected in r.json()["error"]["message"], r.text
        assert waited < HEALTH_TIMEOUT + 5, waited
        # Marked failed, its process gone.
        deadline = time.time() + 10
        while time.time() < deadline and _model(client, hf_id)["state"] != "failed":
            time.sleep(0.1)
        assert _model(client, hf_id)["state"] == "failed"
        while time.time() < deadline and os.path.exists(f"/proc/{pid}"):
            time.sleep(0.1)
        assert not os.path.exists(f"/proc/{pid}"), "the stopped worker is still there"
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
    # The next request loads the model again, in a new worker.
    r = chat(client, hf_id, "Hi", max_tokens=2)
    assert r.status_code == 200, r.text
    model = _model(client, hf_id)
    assert model["state"] == "loaded" and model["meta"]["pid"] not in (None, pid)


def test_without_python_hf_models_fail_clearly_and_gguf_keeps_serving():
    proc, base, log = _start_server(["--model", hf_dir(), "--python", "/nonexistent/python3"],
                                    os.path.join(LOG_DIR, "minerva-e2e-mlx-{port}.log"),
                                    env={"MINERVA_PYTHON": ""})
    hf_id = hf_model_id()
    try:
        with httpx.Client(base_url=base, timeout=120) as client:
            r = chat(client, hf_id, "Hi", max_tokens=1)
            assert r.status_code >= 400
            message = r.json()["error"]["message"]
            assert "pip install mlx-lm 'mlx[cpu]'" in message and "MINERVA_PYTHON" in message, message
            assert "minerva mlx setup" in message, message
            assert chat(client, MODEL_ID, "Hi", max_tokens=2).status_code == 200
    finally:
        _stop_server(proc, log)


def test_concurrent_requests_are_queued_and_all_served(mlx):
    client, hf_id, _ = mlx
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(chat, client, hf_id, f"Say {w}.", max_tokens=2)
                   for w in ("one", "two", "three")]
        results = [f.result() for f in futures]
    assert [r.status_code for r in results] == [200, 200, 200]
    assert all(r.json()["usage"]["completion_tokens"] == 2 for r in results)


def test_unloading_stops_the_worker_process(mlx):
    client, hf_id, _ = mlx
    assert chat(client, hf_id, "Hi", max_tokens=1).status_code == 200
    pid = _model(client, hf_id)["meta"]["pid"]
    assert os.path.exists(f"/proc/{pid}")
    r = client.post("/api/generate", json={"model": hf_id, "keep_alive": 0})
    assert r.status_code == 200, r.text
    deadline = time.time() + 15
    while time.time() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}"), "the worker outlived its model"


def test_mlx_setup_makes_an_environment_that_serve_finds(tmp_path):
    """`minerva mlx setup --venv DIR` creates a virtual environment with mlx-lm (pip: from the
    wheels scripts/test.sh keeps in MINERVA_TEST_WHEELS, else from the network); with
    MINERVA_MLX_VENV=DIR, no MINERVA_PYTHON and no python3 with mlx-lm on PATH, `status`
    reports it and `serve` runs HF models with it."""
    binary = _required_env("MINERVA_BIN")
    base_python = shutil.which("python3")
    assert base_python, "python3 is not on PATH"
    venv = tmp_path / "mlx-venv"
    # A python3 without mlx_lm first on PATH, so that discovery goes on to the managed one.
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python3").write_text("#!/bin/sh\necho 'ModuleNotFoundError: no mlx_lm here' >&2\nexit 1\n")
    (fake / "python3").chmod(0o755)
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "MINERVA_PYTHON": ""}
    env.pop("MINERVA_MLX_VENV", None)
    wheels = os.environ.get("MINERVA_TEST_WHEELS")
    if wheels:
        # scripts/test.sh downloaded the wheels once: pip installs from them, offline.
        env.update(PIP_FIND_LINKS=wheels, PIP_NO_INDEX="1")

    try:
        _setup_then_serve(binary, base_python, venv, env, tmp_path)
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # 350 MB


def _setup_then_serve(binary, base_python, venv, env, tmp_path):
    started = time.time()
    setup = subprocess.run([binary, "mlx", "setup", "--venv", str(venv), "--python", base_python],
                           env=env, capture_output=True, text=True, timeout=900)
    print(f"minerva mlx setup took {time.time() - started:.0f} s")
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert f"creating a Python environment in {venv}" in setup.stdout, setup.stdout
    assert re.search(r"imports mlx_lm \d", setup.stdout), setup.stdout
    assert f"set MINERVA_MLX_VENV={venv} to use this one" in setup.stdout, setup.stdout

    env["MINERVA_MLX_VENV"] = str(venv)
    status = subprocess.run([binary, "mlx", "status"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert status.returncode == 0, status.stdout + status.stderr
    assert f"python: {venv}/bin/python" in status.stdout, status.stdout
    assert f"found as: the managed environment {venv}" in status.stdout, status.stdout

    proc, base, log, hf_id = _servers(None, env={"PATH": env["PATH"], "MINERVA_MLX_VENV": str(venv)})
    try:
        with httpx.Client(base_url=base, timeout=300) as client:
            r = chat(client, hf_id, "Say hello.", max_tokens=2)
            assert r.status_code == 200, r.text
            assert r.json()["usage"]["completion_tokens"] == 2
    finally:
        _stop_server(proc, log)
    assert f"python={venv}/bin/python" in open(log.name).read()

    # Without it (and nothing else), status says how to set one up.
    env["MINERVA_MLX_VENV"] = str(tmp_path / "none")
    status = subprocess.run([binary, "mlx", "status"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert status.returncode != 0
    assert "minerva mlx setup" in status.stderr and "no managed environment" in status.stderr, status.stderr
