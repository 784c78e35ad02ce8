"""Faults (issue 16, item 7): a pull killed with SIGKILL and resumed, a pull onto a full disk,
a worker that runs out of address space.

A worker killed outright (SIGKILL mid-stream: that stream fails, the model reloads in a new
worker on the next request, another model's worker is untouched) is tested in
test_library.py::test_worker_killed_mid_stream_fails_that_stream_and_the_model_reloads; a
dropped connection and a partial left by an earlier pull in test_store.py.
"""
import os
import signal
import subprocess
import time

import httpx
import pytest

import conftest
from test_store import FILE, GEMMA_SHA256, GEMMA_SIZE, NAME, REPO, _gemma, _key, env, hubs, minerva, store_files  # noqa: F401

PULL = f"hf.co/{REPO}:Q4_K_M"


def _cdn_gets(hub, expect):
    return [(r["status"], r["range"], r["bytes"]) for r in hub.requests(expect=expect)
            if r["path"].startswith("/cdn/") and r["method"] == "GET"]


def test_a_pull_killed_with_sigkill_resumes_where_it_stopped(env, hubs):
    # About 13 s for the whole file: the kill lands mid-body.
    slow = hubs("--rate", "20000000")
    partial = os.path.join(env["MINERVA_MODELS"], "blobs", f"sha256-{GEMMA_SHA256}.partial")
    proc = subprocess.Popen([os.environ["MINERVA_BIN"], "pull", PULL], env={**env, "HF_ENDPOINT": slow.base},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while not (os.path.exists(partial) and os.path.getsize(partial) >= 40_000_000):
            assert proc.poll() is None, "the pull ended before it could be killed"
            assert time.time() < deadline, "the download did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    have = os.path.getsize(partial)
    assert 40_000_000 <= have < GEMMA_SIZE
    # What a SIGKILL leaves: the partial and its lock (naming a dead pid); no manifest, no blob.
    assert store_files(env) == [f"blobs/sha256-{GEMMA_SHA256}.partial", f"blobs/sha256-{GEMMA_SHA256}.partial.lock"]
    assert minerva(env, "list").stdout.splitlines()[1:] == []
    slow.stop()

    hub = hubs()
    r = minerva(env, "pull", PULL, hub=hub)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [NAME, f"sha256:{GEMMA_SHA256}", str(GEMMA_SIZE)]
    # Only the missing bytes were fetched; the stale lock was taken over.
    assert _cdn_gets(hub, 4) == [(206, f"bytes={have}-", GEMMA_SIZE - have)]
    assert store_files(env) == [f"blobs/sha256-{GEMMA_SHA256}", f"manifests/{_key(NAME)}.json"]
    assert NAME in minerva(env, "list").stdout


@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs (smaller than the 253 MB Gemma file), unmounted afterwards."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_pull_onto_a_full_disk_fails_clearly_and_leaves_nothing(env, hubs, small_disk):
    env = {**env, "MINERVA_MODELS": str(small_disk / "store")}
    hub = hubs()
    r = minerva(env, "pull", PULL, hub=hub)
    assert r.returncode != 0
    assert "no space left on the device" in r.stderr, r.stderr
    # The partial is deleted (a full disk is not resumable: see minerva-store's download.rs), its
    # lock released, no manifest written: the store holds nothing, and the disk is free again.
    assert store_files(env) == [], store_files(env)
    assert minerva(env, "list").stdout.splitlines()[1:] == []
    st = os.statvfs(small_disk)
    assert (st.f_blocks - st.f_bfree) * st.f_frsize < 1_000_000
    # With room, the same pull works (nothing stale is in its way).
    roomy = {**env, "MINERVA_MODELS": str(small_disk.parent / "roomy-store")}
    r = minerva(roomy, "pull", PULL, hub=hub)
    assert r.returncode == 0, r.stderr


# --- a worker out of memory ---

QWEN = conftest.MODEL_ID
CALL_TIMEOUT = 60  # the server's wait for a worker's answer (minerva-worker remote.rs)


def _vm_size(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmSize for {pid}")


def _ps(base):
    return {m["name"]: m for m in httpx.get(f"{base}/api/ps", timeout=30).json()["models"]}


def _chat(base, model, content="Say hi.", timeout=CALL_TIMEOUT + 60):
    return httpx.post(f"{base}/v1/chat/completions", timeout=timeout,
                      json={"model": model, "messages": [{"role": "user", "content": content}],
                            "max_tokens": 4, "temperature": 0})


def _limit_address_space(pid):
    """An address-space limit at the worker's current size (`prlimit --as`, on that process
    only: nothing on the machine runs short), so its next new mapping (a thread's stack, its
    signal stack, a large allocation) fails."""
    subprocess.run(["prlimit", f"--pid={pid}", f"--as={_vm_size(pid)}"], check=True)


class TwoModels:
    """A server with Qwen (loaded at start) and Gemma (loaded here), each in its own worker."""

    def __init__(self, tmp_path):
        gemma_path = os.environ.get("MINERVA_GEMMA_GGUF") or _gemma()
        self.proc, self.base, self.log = conftest._start_server(
            ["--model", gemma_path, "--parallel", "1", "--ctx-size", "1024"], str(tmp_path / "oom-{port}.log"))
        names = [m["id"] for m in httpx.get(f"{self.base}/v1/models", timeout=30).json()["data"]]
        self.gemma = next(n for n in names if "gemma" in n)
        assert _chat(self.base, self.gemma).status_code == 200
        ps = _ps(self.base)
        self.qwen_pid, self.gemma_pid = ps[QWEN]["pid"], ps[self.gemma]["pid"]
        assert self.qwen_pid != self.gemma_pid and self.proc.pid not in (self.qwen_pid, self.gemma_pid)

    def failing_request(self):
        """The request to the limited worker: an error in the API's shape, the server and Gemma
        untouched. Returns (seconds it took, error)."""
        began = time.monotonic()
        r = _chat(self.base, QWEN, "Write a long poem about the sea.")
        took = time.monotonic() - began
        assert r.status_code >= 500, r.text
        err = r.json()["error"]
        assert err["type"] == "server_error" and err["message"], err
        assert httpx.get(f"{self.base}/health", timeout=10).status_code == 200
        assert _chat(self.base, self.gemma).status_code == 200
        assert _ps(self.base)[self.gemma]["pid"] == self.gemma_pid
        return took, err

    def stop(self):
        conftest._stop_server(self.proc, self.log)


def test_a_worker_out_of_memory_costs_only_its_requests(tmp_path):
    """After one request (the worker's call threads have run, so glibc keeps a thread stack to
    reuse), the limit makes the next call's thread fail to map its signal stack: Rust aborts the
    worker (SIGABRT). The request gets a 500 at once, Gemma goes on, and the next request to
    Qwen loads it again in a new worker."""
    server = TwoModels(tmp_path)
    try:
        assert _chat(server.base, QWEN).status_code == 200
        _limit_address_space(server.qwen_pid)
        took, err = server.failing_request()
        assert took < 30, (took, err)
        assert "worker process" in err["message"], err
        r = _chat(server.base, QWEN)
        assert r.status_code == 200, r.text
        assert _ps(server.base)[QWEN]["pid"] != server.qwen_pid
    finally:
        server.stop()


def test_a_worker_that_cannot_start_a_thread_answers_at_once(tmp_path):
    """The limit before the worker's first call: no thread stack to reuse, so spawning the
    call's thread fails with EAGAIN: the worker exits (71, EX_OSERR) instead of leaving the call
    unanswered, so the request fails at once and the next one loads the model in a new worker."""
    server = TwoModels(tmp_path)
    try:
        _limit_address_space(server.qwen_pid)
        took, err = server.failing_request()
        assert took < 30, (took, err)
        r = _chat(server.base, QWEN)
        assert r.status_code == 200, r.text
        assert _ps(server.base)[QWEN]["pid"] != server.qwen_pid
    finally:
        server.stop()
