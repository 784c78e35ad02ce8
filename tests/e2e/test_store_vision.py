"""Vision models in the library: a model kept with its projector (llama.cpp's mmproj GGUF).

A pull of a hub repository (tests/e2e/hub.py) that holds the tiny vision model pair
(MINERVA_VLM_DIR, built by scripts/test.sh) brings both files, over /api/pull; the model then
says `vision` and answers a chat with an image; a copy keeps the projector; deleting the last
name removes both blobs. A projector that fails verification fails the pull and leaves
nothing; `import --mmproj` refuses a file that is not a projector and keeps a good one.
"""
import base64
import hashlib
import io
import json
import os
import subprocess
import sys

import httpx
import pytest
from PIL import Image

import conftest
from test_store import HUB, _link_or_copy, store_files

REPO = "minerva-test/tiny-vlm-GGUF"
MODEL_FILE = "tiny-vlm-Q4_K_M.gguf"
PROJECTOR_FILE = "mmproj-tiny-vlm-f16.gguf"
NAME = "hf.co/minerva-test/tiny-vlm-gguf:q4_k_m"


def _vlm(name):
    path = os.path.join(os.environ.get("MINERVA_VLM_DIR", ""), name)
    if not os.path.isfile(path):
        pytest.fail("MINERVA_VLM_DIR must hold model.gguf and mmproj.gguf (run scripts/test.sh)",
                    pytrace=False)
    return path


def _sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@pytest.fixture(scope="module")
def digests():
    return {"model": _sha256(_vlm("model.gguf")), "projector": _sha256(_vlm("mmproj.gguf"))}


class Hub:
    """hub.py serving the pair as REPO, beside a text README."""

    def __init__(self, tmp, *flags):
        root = tmp / "hub-root"
        if not root.exists():
            _link_or_copy(_vlm("model.gguf"), str(root / REPO / MODEL_FILE))
            _link_or_copy(_vlm("mmproj.gguf"), str(root / REPO / PROJECTOR_FILE))
            (root / REPO / "README.md").write_text("tiny vision model\n")
        self.proc = subprocess.Popen(
            [sys.executable, HUB, "--root", str(root), "--port", "0", "--log", str(tmp / "hub.log"), *flags],
            stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), f"hub.py said {line!r}"
        self.base = f"http://127.0.0.1:{int(line.split()[1])}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def minerva(store, *args, hub=None):
    binary = os.environ.get("MINERVA_BIN")
    if not binary or not os.path.isfile(binary):
        pytest.fail("MINERVA_BIN must be the built minerva binary", pytrace=False)
    env = {**os.environ, "MINERVA_MODELS": str(store), "NO_COLOR": "1", "RUST_BACKTRACE": "0"}
    if hub is not None:
        env["HF_ENDPOINT"] = hub.base
    return subprocess.run([binary, *args], env=env, capture_output=True, text=True, timeout=300)


def png_uri():
    img = Image.new("RGB", (32, 32))
    img.putdata([((x * 7) % 256, (y * 5) % 256, (x * y) % 256) for y in range(32) for x in range(32)])
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_pull_serve_copy_and_delete_a_vision_model(tmp_path, digests):
    hub = Hub(tmp_path)
    store = tmp_path / "store"
    # Also serving the pair by path (`--model --mmproj`, named "model"), to copy it into the
    # library at the end.
    proc, base, log = conftest._start_server(
        ["--mmproj", _vlm("mmproj.gguf")],
        os.path.join(conftest.LOG_DIR, "minerva-e2e-store-vision-{port}.log"),
        model=_vlm("model.gguf"), store=str(store), env={"HF_ENDPOINT": hub.base})
    try:
        with httpx.stream("POST", f"{base}/api/pull", json={"model": f"hf.co/{REPO}:Q4_K_M"},
                          timeout=300) as r:
            assert r.status_code == 200
            lines = [json.loads(line) for line in r.iter_lines() if line.strip()]
        assert lines[0]["status"] == "pulling manifest" and lines[-1]["status"] == "success", lines
        assert not any("error" in line for line in lines), lines
        # One layer per file, as Ollama streams a model and its projector.
        pulled = {line["digest"] for line in lines if line["status"].startswith("pulling ") and line.get("digest")}
        assert pulled == {f"sha256:{digests['model']}", f"sha256:{digests['projector']}"}, lines
        for digest in pulled:
            done = [line for line in lines if line.get("digest") == digest and line.get("completed") == line.get("total")]
            assert done, f"{digest} never completed: {lines}"
        blobs = sorted(f"blobs/sha256-{d}" for d in digests.values())
        assert store_files_of(store, "blobs/") == blobs

        show = httpx.post(f"{base}/api/show", json={"model": NAME}, timeout=30).json()
        assert "vision" in show["capabilities"], show
        projector = store / "blobs" / f"sha256-{digests['projector']}"
        assert show["projector_info"]["minerva.projector.path"] == str(projector), show["projector_info"]

        r = httpx.post(f"{base}/v1/chat/completions", timeout=300, json={
            "model": NAME, "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "What is in the picture?"},
                {"type": "image_url", "image_url": {"url": png_uri()}}]}]})
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["prompt_tokens"] > 10
        show = httpx.post(f"{base}/api/show", json={"model": NAME}, timeout=30).json()
        assert show["projector_info"]["clip.projector_type"] == "qwen2vl_merger", show["projector_info"]

        # A copy keeps the projector; deleting one name keeps the files the other uses.
        assert httpx.post(f"{base}/api/copy", json={"source": NAME, "destination": "mine:vision"}).status_code == 200
        copy = httpx.post(f"{base}/api/show", json={"model": "mine:vision"}, timeout=30).json()
        assert "vision" in copy["capabilities"], copy
        assert httpx.request("DELETE", f"{base}/api/delete", json={"model": NAME}, timeout=60).status_code == 200
        assert store_files_of(store, "blobs/") == blobs
        assert httpx.request("DELETE", f"{base}/api/delete", json={"model": "mine:vision"}, timeout=60).status_code == 200
        assert store_files_of(store, "blobs/", "manifests/") == []

        # A model served by path enters the library with its projector.
        assert httpx.post(f"{base}/api/copy", json={"source": "model", "destination": "from:path"},
                          timeout=300).status_code == 200
        copy = httpx.post(f"{base}/api/show", json={"model": "from:path"}, timeout=30).json()
        assert "vision" in copy["capabilities"], copy
        assert store_files_of(store, "blobs/") == blobs
        assert httpx.request("DELETE", f"{base}/api/delete", json={"model": "from:path"}, timeout=60).status_code == 200
        assert store_files_of(store, "blobs/", "manifests/") == []
    finally:
        conftest._stop_server(proc, log)
        hub.stop()


def store_files_of(store, *under):
    """The files in the store (those under the given folders only, when given)."""
    files = store_files({"MINERVA_MODELS": str(store)})
    return [f for f in files if not under or f.startswith(under)]


@pytest.mark.parametrize("bad", [PROJECTOR_FILE, MODEL_FILE])
def test_a_file_that_fails_verification_fails_the_pull(tmp_path, bad):
    """The projector is pulled first: a bad one fails the pull before the model is
    downloaded; a bad model takes the verified projector with it."""
    hub = Hub(tmp_path, "--bad-etag-for", bad)
    store = tmp_path / "store"
    try:
        r = minerva(store, "pull", f"hf.co/{REPO}:Q4_K_M", hub=hub)
        assert r.returncode != 0
        assert "sha256 mismatch" in r.stderr and bad in r.stderr, r.stderr
        assert store_files_of(store) == [], "nothing of the failed pull is left"
    finally:
        hub.stop()


def test_import_keeps_a_projector_and_refuses_what_is_not_one(tmp_path, digests):
    store = tmp_path / "store"
    qwen = os.environ.get("MINERVA_QWEN_GGUF", "")
    if not os.path.isfile(qwen):
        pytest.fail("MINERVA_QWEN_GGUF must point to the Qwen test model", pytrace=False)
    r = minerva(store, "import", _vlm("model.gguf"), "--mmproj", qwen, "--name", "bad")
    assert r.returncode != 0
    assert "is not a vision projector" in r.stderr and "'qwen2'" in r.stderr, r.stderr
    assert store_files_of(store) == []
    # The projector is no model either.
    r = minerva(store, "import", _vlm("mmproj.gguf"), "--name", "bad")
    assert r.returncode != 0 and "multimodal projector" in r.stderr, r.stderr
    assert store_files_of(store) == []

    r = minerva(store, "import", _vlm("model.gguf"), "--mmproj", _vlm("mmproj.gguf"), "--name", "vlm")
    assert r.returncode == 0, r.stderr
    show = minerva(store, "show", "vlm")
    assert show.returncode == 0, show.stderr
    projector = show.stdout.split("  Projector", 1)[1]
    assert "qwen2vl_merger" in projector and f"sha256-{digests['projector']}" in projector, show.stdout
    # A re-import without --mmproj makes it a text model, and the projector's blob goes.
    r = minerva(store, "import", _vlm("model.gguf"), "--name", "vlm")
    assert r.returncode == 0, r.stderr
    assert "Projector" not in minerva(store, "show", "vlm").stdout
    assert f"blobs/sha256-{digests['projector']}" not in store_files_of(store)
