"""Hostile files (issue 16): every corruption kind of llama.cpp's own GGUF tests, written by
scripts/fixtures/hostile_gguf.py into tests/fixtures/hostile-gguf (with the phrase each error
must hold, expected.tsv), is refused by `minerva import` (a non-zero exit, a message naming the
problem, nothing added to `minerva list`) and by `minerva serve --model`; and a GGUF that passes
Minerva's reader but that llama.cpp refuses to load costs only its worker: that request fails,
the server goes on serving another model.
"""
import os
import shutil
import subprocess

import httpx
import ollama
import pytest

import conftest

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "hostile-gguf")


def _cases():
    with open(os.path.join(FIXTURES, "expected.tsv"), encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if not line.startswith("#")]
    return [(name, phrase) for name, phrase in rows if phrase]


CASES = _cases()


def names_it(said, name, phrase):
    """The message names the problem: the reader's phrase, or for a file without the GGUF
    magic, the format check's 'expected a GGUF file' that comes before the reader."""
    return phrase in said or (name in ("bad-magic.gguf", "empty-file.gguf")
                              and ("expected a GGUF" in said or "not a GGUF file" in said))


def run(store, *args, timeout=60):
    return subprocess.run([conftest._required_env("MINERVA_BIN"), *args], capture_output=True,
                          text=True, timeout=timeout,
                          env={**os.environ, "MINERVA_MODELS": str(store), "NO_COLOR": "1"})


def test_there_is_a_file_for_each_kind():
    assert len(CASES) >= 50
    kinds = " ".join(name for name, _ in CASES)
    for kind in ("bad-magic", "version-", "n-tensors-", "n-kv-", "key-length-", "value-type-",
                 "array-type-", "array-count-", "tensor-dims-", "tensor-dim-", "tensor-type-",
                 "tensor-offset-", "alignment-", "tensor-size-overflow"):
        assert kind in kinds, kind


@pytest.mark.parametrize("name,phrase", CASES, ids=[c[0] for c in CASES])
def test_import_refuses_it_and_adds_nothing(tmp_path, name, phrase):
    store = tmp_path / "store"
    r = run(store, "import", os.path.join(FIXTURES, name), "--name", "hostile")
    assert r.returncode != 0, r.stdout
    assert names_it(r.stderr, name, phrase), r.stderr
    assert "panicked" not in r.stderr, r.stderr
    listed = run(store, "list")
    assert listed.returncode == 0, listed.stderr
    assert "hostile" not in listed.stdout
    blobs = store / "blobs"
    assert not blobs.exists() or not [b for b in os.listdir(blobs) if not b.endswith(".partial")]


@pytest.mark.parametrize("name,phrase", [c for c in CASES if c[0] in (
    "bad-magic.gguf", "version-4.gguf", "n-tensors-overflow.gguf", "tensor-dims-5.gguf",
    "tensor-offset-unaligned.gguf", "alignment-3.gguf", "key-duplicate.gguf")] or CASES[:3])
def test_serve_refuses_it_cleanly(tmp_path, name, phrase):
    r = run(tmp_path / "store", "serve", "--model", os.path.join(FIXTURES, name), "--port", "0",
            timeout=120)
    assert r.returncode != 0
    said = r.stderr + r.stdout
    assert names_it(said, name, phrase), said
    assert "panicked" not in said, said


def test_a_gguf_llama_cpp_refuses_costs_only_its_worker(tmp_path):
    """valid.gguf passes Minerva's reader (a llama header, one 8-float tensor) but is no llama
    model: llama.cpp's load fails in the worker; the request gets the error, the server and
    the other model go on."""
    store = tmp_path / "store"
    assert run(store, "import", conftest._required_env("MINERVA_QWEN_GGUF"), "--name", "qwen:ok").returncode == 0
    r = run(store, "import", os.path.join(FIXTURES, "valid.gguf"), "--name", "broken:test")
    assert r.returncode == 0, r.stderr
    proc, base, log = conftest._start_server([], os.path.join(conftest.LOG_DIR, "minerva-e2e-hostile-{port}.log"),
                                             model=False, store=str(store))
    try:
        client = ollama.Client(host=base, timeout=300)
        for _ in range(2):
            with pytest.raises(ollama.ResponseError) as info:
                client.generate(model="broken:test", prompt="hi", options={"num_predict": 2})
            assert info.value.status_code >= 400
            assert "panicked" not in str(info.value)
            assert httpx.get(f"{base}/health", timeout=30).status_code == 200
        r = client.generate(model="qwen:ok", prompt="hi", options={"num_predict": 2})
        assert r.done
        assert proc.poll() is None, "the server itself went down"
    finally:
        conftest._stop_server(proc, log)
