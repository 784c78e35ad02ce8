"""The model store end to end: `minerva pull/import/list/show/rm` against tests/e2e/hub.py.

Each test has its own store (MINERVA_MODELS) and HOME in a temporary directory, and its own
hub stand-in serving a hard link (or copy) of the real Gemma GGUF as
ggml-org/gemma-3-270m-GGUF/gemma-3-270m-Q4_K_M.gguf, beside a small dummy Q8_0 file.
"""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest

REPO = "ggml-org/gemma-3-270m-GGUF"
FILE = "gemma-3-270m-Q4_K_M.gguf"
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GEMMA_SIZE = 253_113_024
NAME = "hf.co/ggml-org/gemma-3-270m-gguf:q4_k_m"
HUB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hub.py")
HOSTILE = ["../x", "/etc/passwd", "a/../../b", "x:../../y", "sha256:abc", "a\\b", "a" * 400]


def _gemma():
    path = os.environ.get("MINERVA_GEMMA_GGUF") or os.path.expanduser(
        "~/.local/share/minerva/models/gemma-3-270m-q4_k_m.gguf"
    )
    if not os.path.isfile(path):
        pytest.fail("MINERVA_GEMMA_GGUF must point to the Gemma test model (run scripts/test.sh)", pytrace=False)
    return path


def _link_or_copy(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


class Hub:
    def __init__(self, tmp, *flags):
        self.root = tmp / "hub-root"
        if not self.root.exists():
            _link_or_copy(_gemma(), str(self.root / REPO / FILE))
            dummy = self.root / REPO / "gemma-3-270m-Q8_0.gguf"
            dummy.write_bytes(b"GGUF" + b"\0" * 60)
        self.log = tmp / f"hub-{len(list(tmp.glob('hub-*.log')))}.log"
        self.proc = subprocess.Popen(
            [sys.executable, HUB, "--root", str(self.root), "--port", "0", "--log", str(self.log), *flags],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), f"hub.py said {line!r}"
        self.base = f"http://127.0.0.1:{int(line.split()[1])}"

    def requests(self, expect=0):
        """The logged requests (waiting briefly for the last lines to be written)."""
        deadline = time.time() + 3
        while True:
            entries = [json.loads(l) for l in self.log.read_text().splitlines()] if self.log.exists() else []
            if len(entries) >= expect or time.time() > deadline:
                return entries
            time.sleep(0.05)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    store = tmp_path / "store"
    return {
        **os.environ,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "MINERVA_MODELS": str(store),
        "NO_COLOR": "1",
        "RUST_BACKTRACE": "0",
    }


@pytest.fixture
def hubs(tmp_path):
    started = []

    def start(*flags):
        hub = Hub(tmp_path, *flags)
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.stop()


def minerva(env, *args, hub=None, timeout=120):
    binary = os.environ.get("MINERVA_BIN")
    if not binary or not os.path.isfile(binary):
        pytest.fail("MINERVA_BIN must be the built minerva binary", pytrace=False)
    if hub is not None:
        env = {**env, "HF_ENDPOINT": hub.base}
    return subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=timeout)


def store_files(env):
    root = env["MINERVA_MODELS"]
    return sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, _, files in os.walk(root)
        for f in files
    )


def test_pull_list_show(env, hubs):
    hub = hubs()
    r = minerva(env, "pull", f"hf.co/{REPO}:Q4_K_M", hub=hub)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [NAME, f"sha256:{GEMMA_SHA256}", str(GEMMA_SIZE)]
    for status in ["pulling manifest", "verifying sha256 digest", "writing manifest", "success"]:
        assert status in r.stderr
    assert store_files(env) == [f"blobs/sha256-{GEMMA_SHA256}", f"manifests/{_key(NAME)}.json"]

    listing = minerva(env, "list")
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.split() == ["NAME", "ID", "SIZE", "MODIFIED", "BACKEND", "ALIAS", "OF"]
    assert row.split()[:4] == [NAME, GEMMA_SHA256[:12], "253", "MB"]
    assert row.endswith("llama.cpp")

    show = minerva(env, "show", NAME)
    assert show.returncode == 0, show.stderr
    assert "gemma3" in show.stdout and "Q4_K_M" in show.stdout and "32768" in show.stdout
    assert minerva(env, "show", "--license", NAME).stdout.strip() == "gemma"

    requests = hub.requests(expect=4)
    cdn = [r for r in requests if r["path"].startswith("/cdn/") and r["method"] == "GET"]
    assert [(r["status"], r["bytes"], r["range"]) for r in cdn] == [(200, GEMMA_SIZE, None)]
    assert any(r["path"] == f"/api/models/{REPO}" for r in requests)
    assert any(r["path"] == f"/{REPO}/resolve/main/{FILE}" and r["status"] == 302 for r in requests)

    # Pulling again downloads nothing: the blob is there.
    again = minerva(env, "pull", f"hf.co/{REPO}", hub=hub)
    assert again.returncode == 0, again.stderr
    assert again.stdout.split()[0] == "hf.co/ggml-org/gemma-3-270m-gguf:latest"
    assert len([r for r in hub.requests() if r["path"].startswith("/cdn/") and r["method"] == "GET"]) == 1


def _key(name):
    import hashlib

    return hashlib.sha256(name.encode()).hexdigest()


def test_quant_selection_errors(env, hubs):
    hub = hubs()
    r = minerva(env, "pull", f"hf.co/{REPO}:Q3_K_M", hub=hub)
    assert r.returncode != 0
    assert "gemma-3-270m-Q8_0.gguf" in r.stderr and FILE in r.stderr
    # The dummy Q8_0 file is not a valid GGUF: nothing enters the store.
    r = minerva(env, "pull", f"hf.co/{REPO}:Q8_0", hub=hub)
    assert r.returncode != 0
    assert "invalid GGUF" in r.stderr
    assert store_files(env) == []
    r = minerva(env, "pull", "hf.co/nobody/nothing", hub=hub)
    assert r.returncode != 0 and "not found" in r.stderr


def test_dropped_connection_resumes(env, hubs):
    half = GEMMA_SIZE // 2
    hub = hubs("--fail-after", str(half))
    r = minerva(env, "pull", f"{REPO}/{FILE}", hub=hub)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["hf.co/ggml-org/gemma-3-270m-gguf:gemma-3-270m-q4_k_m", f"sha256:{GEMMA_SHA256}"]
    cdn = [r for r in hub.requests(expect=5) if r["path"].startswith("/cdn/") and r["method"] == "GET"]
    assert [(r["status"], r["range"], r["bytes"]) for r in cdn] == [
        (200, None, half),
        (206, f"bytes={half}-", GEMMA_SIZE - half),
    ]
    assert store_files(env) == [
        f"blobs/sha256-{GEMMA_SHA256}",
        f"manifests/{_key('hf.co/ggml-org/gemma-3-270m-gguf:gemma-3-270m-q4_k_m')}.json",
    ]


def test_an_interrupted_partial_is_resumed(env, hubs):
    hub = hubs()
    have = 100_000_000
    blobs = os.path.join(env["MINERVA_MODELS"], "blobs")
    os.makedirs(blobs)
    with open(_gemma(), "rb") as src, open(os.path.join(blobs, f"sha256-{GEMMA_SHA256}.partial"), "wb") as dst:
        dst.write(src.read(have))
    r = minerva(env, "pull", f"hf.co/{REPO}:Q4_K_M", hub=hub)
    assert r.returncode == 0, r.stderr
    cdn = [r for r in hub.requests(expect=4) if r["path"].startswith("/cdn/") and r["method"] == "GET"]
    assert [(r["status"], r["range"], r["bytes"]) for r in cdn] == [(206, f"bytes={have}-", GEMMA_SIZE - have)]
    assert f"blobs/sha256-{GEMMA_SHA256}" in store_files(env)


def test_hash_mismatch_leaves_nothing(env, hubs):
    hub = hubs("--bad-etag")
    r = minerva(env, "pull", f"hf.co/{REPO}:Q4_K_M", hub=hub)
    assert r.returncode != 0
    assert "sha256 mismatch" in r.stderr and GEMMA_SHA256 in r.stderr
    assert store_files(env) == []


def test_import_of_a_truncated_file_leaves_the_store_empty(env, tmp_path):
    cut = tmp_path / "cut.gguf"
    with open(_gemma(), "rb") as f:
        cut.write_bytes(f.read(GEMMA_SIZE - 1_000_000))
    r = minerva(env, "import", str(cut), "--name", "cut")
    assert r.returncode != 0
    assert "invalid GGUF" in r.stderr and "truncated" in r.stderr
    assert store_files(env) == []
    # A directory that is no Hugging Face model: what it holds and what it lacks.
    r = minerva(env, "import", str(tmp_path))
    assert r.returncode != 0 and "without config.json" in r.stderr, r.stderr
    assert minerva(env, "list").stdout.splitlines()[1:] == []


def test_hostile_names_are_rejected(env):
    for name in HOSTILE:
        for args in (["import", _gemma(), "--name", name], ["show", name], ["rm", name]):
            r = minerva(env, *args)
            assert r.returncode != 0, args
            assert "invalid" in r.stderr, (args, r.stderr)
    assert store_files(env) == []


def test_rm_removes_the_blob_when_no_name_uses_it(env):
    for name in ["gemma3:one", "gemma3:two"]:
        r = minerva(env, "import", _gemma(), "--name", name)
        assert r.returncode == 0, r.stderr
    blob = f"blobs/sha256-{GEMMA_SHA256}"
    assert minerva(env, "rm", "gemma3:one").returncode == 0
    assert blob in store_files(env)
    r = minerva(env, "rm", "gemma3:two")
    assert r.returncode == 0 and "deleted 'gemma3:two'" in r.stdout
    assert store_files(env) == []
    r = minerva(env, "rm", "gemma3:two")
    assert r.returncode != 0 and "not found" in r.stderr


def test_a_known_model_pulls_by_name_from_the_fetch_cache(env):
    """`minerva pull NAME` of a catalog model (as the UI's offer does over /api/pull) takes the
    verified file `minerva fetch` keeps in <root>/models, without downloading it again."""
    cache = os.path.join(env["MINERVA_MODELS"], "models")
    gemma = _gemma()
    _link_or_copy(gemma, os.path.join(cache, os.path.basename(gemma)))
    shutil.copy(gemma + ".verified", os.path.join(cache, os.path.basename(gemma) + ".verified"))
    r = minerva(env, "pull", "gemma3:270m")
    assert r.returncode == 0, r.stderr
    name, digest, size = r.stdout.strip().split("\t")
    assert (name, size) == ("gemma3:270m", "253113024")
    assert digest == "sha256:a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
    assert "success" in r.stderr
    r = minerva(env, "pull", "gemma3:270m", "--name", "other:latest")
    assert r.returncode != 0
    assert "known model" in r.stderr and "copy" in r.stderr
    listed = minerva(env, "list").stdout
    assert "gemma3:270m" in listed and "other" not in listed
