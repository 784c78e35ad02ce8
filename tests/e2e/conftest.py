"""Starts the real `minerva serve` on a free port with the real Qwen model, once per session.

The binary and the models come from the environment that scripts/test.sh sets (MINERVA_BIN,
MINERVA_QWEN_GGUF, and for the MLX backend MINERVA_QWEN_HF and MINERVA_PYTHON). A missing model
is a failure, never a skip.

`both_server` serves the same Qwen twice: the GGUF on llama.cpp and its Hugging Face conversion
on MLX. The `model` fixture is parametrized over the two backends, so a test that takes it runs
once per backend (ids `[llama.cpp]` and `[mlx]`; `-k "not mlx"` leaves MLX out).
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
BACKENDS = ("llama.cpp", "mlx")
# Seconds an MLX worker may go without answering a health check on the test servers (30 by
# default): short, so that a busy worker that failed to answer would fail the tests.
MLX_HEALTH_TIMEOUT = 5


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value or not os.path.exists(value):
        pytest.fail(f"{name} must point to an existing file (run scripts/test.sh)", pytrace=False)
    return value


def hf_dir() -> str:
    """The Hugging Face directory converted from the Qwen GGUF (served on MLX)."""
    path = os.environ.get("MINERVA_QWEN_HF")
    if not path or not os.path.isfile(os.path.join(path, "config.json")):
        pytest.fail("MINERVA_QWEN_HF must point to the converted HF directory (run scripts/test.sh)",
                    pytrace=False)
    return path


def hf_model_id() -> str:
    """What the server calls the HF directory: its name."""
    return os.path.basename(hf_dir().rstrip("/"))


# The servers whose answers are compared with the reference llama.cpp's recorded ones
# (tests/fixtures) run the CPU variant that reference is compiled like: `haswell`, x86-64-v3
# (scripts/reference/build.sh). Other variants (AVX-512 ...) round differently and may part from
# it at near-ties; every other server runs the variant picked for this CPU.
REFERENCE_KERNELS = {"MINERVA_CPU_VARIANT": "haswell"}


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
    ctx_args = [] if "--ctx-size" in extra_args else ["--ctx-size", str(CTX_SIZE)]
    proc = subprocess.Popen(
        [binary, "serve", *model_args, "--port", str(port), *ctx_args, *extra_args],
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


def _extra_server(name, args, model=None, env=None):
    """Another server (another model file with `model`), for the fixtures that need one."""
    proc, base, log = _start_server(args, os.path.join(LOG_DIR, f"minerva-e2e-{name}-{{port}}.log"), model,
                                    env=env)
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


class BothServer:
    """The server of `both_server`: its URL and its log."""

    def __init__(self, base, log_path):
        self.base, self.log_path = base, log_path

    def log_text(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()


@pytest.fixture(scope="session")
def both_server():
    """One server with the Qwen GGUF (llama.cpp, loaded at start) and the same model as a Hugging
    Face directory (MLX, loaded on its first request, through `--python`: MINERVA_PYTHON is
    cleared). One per session: the MLX worker's load (seconds) is paid once."""
    python = _required_env("MINERVA_PYTHON")
    proc, base, log = _start_server(["--model", hf_dir(), "--python", python],
                                    os.path.join(LOG_DIR, "minerva-e2e-both-{port}.log"),
                                    env={"MINERVA_PYTHON": "",
                                         "MINERVA_MLX_HEALTH_TIMEOUT": str(MLX_HEALTH_TIMEOUT)})
    yield BothServer(base, log.name)
    _stop_server(proc, log)


@pytest.fixture(scope="session")
def both_client(both_server):
    # MLX on a CPU takes about a second per token: a generous timeout.
    return openai.OpenAI(base_url=f"{both_server.base}/v1", api_key="not-needed", max_retries=0,
                         timeout=600)


@pytest.fixture(scope="session")
def both_http(both_server):
    with httpx.Client(base_url=both_server.base, timeout=600) as c:
        yield c


class Served:
    """One model of `both_server`: its id, its backend, and how many tokens a test may ask of it.

    MLX on a Linux CPU makes about 1.4 tokens a second and reads a prompt at a few tokens a
    second, so tests ask it for fewer tokens than llama.cpp: `tokens(llama, mlx)`."""

    def __init__(self, backend):
        self.backend = backend
        self.id = MODEL_ID if backend == "llama.cpp" else hf_model_id()
        self.mlx = backend == "mlx"

    def tokens(self, llama: int, mlx: int) -> int:
        return mlx if self.mlx else llama

    def __repr__(self):
        return f"Served({self.backend}: {self.id})"


@pytest.fixture(params=BACKENDS)
def model(request):
    """The model to test, once per backend (both served by `both_server`)."""
    return Served(request.param)
