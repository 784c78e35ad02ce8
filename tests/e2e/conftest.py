"""Starts the real `minerva serve` on a free port with the real Qwen model, once per session.

The binary and the model come from the environment that scripts/test.sh sets
(MINERVA_BIN, MINERVA_QWEN_GGUF). A missing model is a failure, never a skip.
"""
import os
import socket
import subprocess
import tempfile
import time

import httpx
import openai
import pytest

CTX_SIZE = 2048
MODEL_ID = "qwen2.5-coder:0.5b"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value or not os.path.exists(value):
        pytest.fail(f"{name} must point to an existing file (run scripts/test.sh)", pytrace=False)
    return value


def _start_server(extra_args, log_path, model=None, store=None, env=None):
    """`minerva serve --model MODEL` (Qwen by default) over an empty store of its own, unless
    `store` names one; `model=False` serves the store alone."""
    binary = _required_env("MINERVA_BIN")
    if model is None:
        model = _required_env("MINERVA_QWEN_GGUF")
    port = _free_port()
    log = open(log_path.format(port=port), "wb")
    store = store or tempfile.mkdtemp(prefix="minerva-store-")
    # Debug logs of the llama backend say when a generation was cancelled, and after how many tokens.
    env = {**os.environ, "RUST_LOG": "info,minerva_llama=debug,llama-cpp-2=warn", "NO_COLOR": "1",
           "MINERVA_MODELS": store, **(env or {})}
    model_args = ["--model", model] if model else []
    proc = subprocess.Popen(
        [binary, "serve", *model_args, "--port", str(port), "--ctx-size", str(CTX_SIZE), *extra_args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        if proc.poll() is not None:
            pytest.fail(f"minerva serve exited with {proc.returncode}; see {log.name}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.time() > deadline:
            proc.kill()
            pytest.fail("minerva serve did not become healthy in 120 s")
        time.sleep(0.2)
    return proc, base, log


def _stop_server(proc, log):
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


LOG_DIR = os.environ.get("TMPDIR", "/tmp")


@pytest.fixture(scope="session")
def server():
    proc, base, log = _start_server([], os.path.join(LOG_DIR, "minerva-e2e-{port}.log"))
    server_log.path = log.name
    yield base
    _stop_server(proc, log)


def _extra_server(name, args, model=None):
    """Another server (another model file with `model`), for the fixtures that need one."""
    proc, base, log = _start_server(args, os.path.join(LOG_DIR, f"minerva-e2e-{name}-{{port}}.log"), model)
    yield base
    _stop_server(proc, log)


@pytest.fixture(scope="session")
def parallel_server():
    """A second server decoding up to 4 requests together."""
    yield from _extra_server("parallel", ["--parallel", "4"])


@pytest.fixture(scope="session")
def tiny_queue_server():
    """One sequence at a time and room for one waiting request."""
    yield from _extra_server("queue", ["--parallel", "1", "--queue", "1"])


@pytest.fixture(scope="session")
def small_queue_server():
    """Four sequences decoded together and room for four waiting requests."""
    yield from _extra_server("small-queue", ["--parallel", "4", "--queue", "4"])


@pytest.fixture(scope="session")
def timeout_server():
    """One sequence, and a request may wait at most one second for it."""
    yield from _extra_server("timeout", ["--parallel", "1", "--queue-timeout", "1"])


class _ServerLog:
    path = None

    def text(self) -> str:
        with open(self.path, encoding="utf-8", errors="replace") as f:
            return f.read()


server_log = _ServerLog()


@pytest.fixture(scope="session")
def log(server):
    return server_log


@pytest.fixture(scope="session")
def client(server):
    return openai.OpenAI(base_url=f"{server}/v1", api_key="not-needed", max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def http(server):
    with httpx.Client(base_url=server, timeout=120) as c:
        yield c
