"""Blobs and /api/create through the official `ollama` client, as `ollama create` drives them:
a GGUF uploaded under its digest (verified as it streams), then a model made of it; a new name
for a model; and what create does not take yet, refused with the library unchanged."""
import hashlib
import os

import httpx
import ollama
import pytest

import conftest
from test_library import GEMMA, QWEN, client, serve, store  # noqa: F401 (store is a fixture)


@pytest.fixture(scope="module")
def empty(tmp_path_factory):
    return tmp_path_factory.mktemp("empty-store")


@pytest.fixture(scope="module")
def fresh(empty):
    """A server over an empty library of its own."""
    proc, base, log = serve(empty, "create-fresh")
    yield base
    conftest._stop_server(proc, log)


def blobs_of(empty):
    """The blobs directory of the `fresh` server's store (serve() clones `empty` beside it)."""
    return empty.parent / f"{empty.name}-create-fresh" / "blobs"


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def test_upload_then_create_from_the_blob(fresh):
    gemma = os.environ["MINERVA_GEMMA_GGUF"]
    digest = sha256_of(gemma)
    c = client(fresh)
    assert httpx.head(f"{fresh}/api/blobs/{digest}", timeout=30).status_code == 404
    # The client checks with HEAD, then uploads the whole file (far over the JSON body limit).
    assert c.create_blob(gemma) == digest
    assert httpx.head(f"{fresh}/api/blobs/{digest}", timeout=30).status_code == 200
    r = c.create(model="uploaded:latest", files={"gemma-3-270m.gguf": digest})
    assert r.status == "success"
    listed = {m.model: m for m in c.list().models}
    assert listed["uploaded:latest"].digest == digest.split(":")[1]
    out = c.generate(model="uploaded:latest", prompt="Hi", options={"num_predict": 2, "temperature": 0})
    assert out.done and out.eval_count >= 1
    # Streamed, the progress ends with success.
    statuses = [p.status for p in c.create(model="again:latest", files={"m.gguf": digest}, stream=True)]
    assert statuses[-1] == "success" and f"using existing layer {digest}" in statuses


def test_a_wrong_digest_keeps_nothing(fresh, empty):
    body = os.urandom(100_000)
    wrong = "sha256:" + "0" * 64
    r = httpx.post(f"{fresh}/api/blobs/{wrong}", content=body, timeout=60)
    assert r.status_code == 400 and "digest mismatch" in r.json()["error"], r.text
    assert httpx.head(f"{fresh}/api/blobs/{wrong}", timeout=30).status_code == 404
    right = "sha256:" + hashlib.sha256(body).hexdigest()
    assert httpx.post(f"{fresh}/api/blobs/{right}", content=body, timeout=60).status_code == 201
    assert httpx.head(f"{fresh}/api/blobs/{right}", timeout=30).status_code == 200
    # Not a GGUF: no model is made of it.
    with pytest.raises(ollama.ResponseError) as info:
        client(fresh).create(model="junk:latest", files={"x.bin": right})
    assert info.value.status_code == 400
    for bad in ["sha256:xyz", "md5:" + "0" * 32, "sha256:" + "0" * 63]:
        r = httpx.post(f"{fresh}/api/blobs/{bad}", content=b"x", timeout=30)
        assert r.status_code == 400, (bad, r.text)
    blobs = blobs_of(empty)
    assert blobs.is_dir()
    kept = sorted(p.name for p in blobs.iterdir())
    assert not [n for n in kept if "partial" in n or "tmp" in n], kept
    assert "sha256-" + "0" * 64 not in kept


def test_create_from_a_model_and_the_refusals(store):  # noqa: F811
    proc, base, log = serve(store, "create")
    try:
        c = client(base)
        assert c.create(model="mine:copy", from_=GEMMA).status == "success"
        before = sorted(m.model for m in c.list().models)
        assert "mine:copy" in before
        for kwargs, field in [({"from_": QWEN, "system": "Be terse."}, "system"),
                              ({"from_": QWEN, "parameters": {"temperature": 0}}, "parameters"),
                              ({"from_": QWEN, "template": "{{ .Prompt }}"}, "template"),
                              ({"from_": QWEN, "messages": [{"role": "user", "content": "hi"}]}, "messages"),
                              ({"from_": QWEN, "quantize": "q4_K_M"}, "quantize"),
                              ({"from_": QWEN, "adapters": {"a.gguf": "sha256:" + "1" * 64}}, "adapters"),
                              ({"files": {"m.gguf": "sha256:" + "2" * 64}}, "no blob"),
                              ({"from_": "nothing:here"}, "not found"),
                              ({}, "from or files is required")]:
            with pytest.raises(ollama.ResponseError) as info:
                c.create(model="new:one", **kwargs)
            assert field in str(info.value), (kwargs, str(info.value))
            assert info.value.status_code in (400, 404), kwargs
        assert sorted(m.model for m in c.list().models) == before
    finally:
        conftest._stop_server(proc, log)
