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
        for kwargs, field in [({"from_": QWEN, "template": "{{ if .Prompt }}"}, "template"),
                              ({"from_": QWEN, "template": "{% if %}"}, "template"),
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


SYSTEM = "You are a pirate. Answer in one short sentence."
MESSAGES = [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "A pirate, arr."}]
PARAMETERS = {"temperature": 0, "num_predict": 6, "top_k": 1}


def test_a_created_models_settings_apply_on_every_route(store):  # noqa: F811
    """SYSTEM, PARAMETER and MESSAGE of a created model, seen in the prompt token count and the
    greedy reply, through the Ollama and OpenAI routes; the request's own values win."""
    import openai
    proc, base, log = serve(store, "create-settings")
    try:
        c = client(base)
        r = c.create(model="pirate:latest", from_=QWEN, system=SYSTEM, parameters=PARAMETERS, messages=MESSAGES)
        assert r.status == "success"
        shown = c.show("pirate:latest")
        assert "temperature" in shown.parameters and "num_predict" in shown.parameters
        assert "SYSTEM " + SYSTEM in shown.modelfile and "PARAMETER num_predict" in shown.modelfile
        assert "MESSAGE assistant" in shown.modelfile
        raw = httpx.post(f"{base}/api/show", json={"model": "pirate:latest"}, timeout=30).json()
        assert raw["system"] == SYSTEM and raw["messages"] == MESSAGES

        oc = openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0, timeout=300)
        ask = [{"role": "user", "content": "Where is your ship?"}]
        spelled = [{"role": "system", "content": SYSTEM}, *MESSAGES, *ask]
        # The created model, nothing given but the question.
        mine = oc.chat.completions.create(model="pirate:latest", messages=ask,
                                          extra_body={"cache_prompt": False})
        # The base model with the same system prompt, messages and parameters spelled out.
        base_r = oc.chat.completions.create(model=QWEN, messages=spelled, temperature=0, max_tokens=6,
                                            extra_body={"top_k": 1, "cache_prompt": False})
        assert mine.usage.prompt_tokens == base_r.usage.prompt_tokens
        assert mine.choices[0].message.content == base_r.choices[0].message.content
        assert mine.usage.completion_tokens <= 6
        # Ollama's chat: the same prompt, the same token limit.
        o = c.chat(model="pirate:latest", messages=ask)
        assert o.prompt_eval_count == base_r.usage.prompt_tokens and o.eval_count <= 6
        # The request's own system prompt and limit win.
        own = oc.chat.completions.create(model="pirate:latest", max_tokens=2,
                                         messages=[{"role": "system", "content": "Be brief."}, *ask],
                                         extra_body={"cache_prompt": False})
        spelled_own = oc.chat.completions.create(model=QWEN, max_tokens=2, temperature=0,
                                                 messages=[{"role": "system", "content": "Be brief."}, *MESSAGES, *ask],
                                                 extra_body={"cache_prompt": False})
        assert own.usage.prompt_tokens == spelled_own.usage.prompt_tokens
        assert own.usage.completion_tokens <= 2
        # A copy of a created model keeps its settings; another create adds to them.
        assert c.create(model="pirate:v2", from_="pirate:latest", parameters={"num_predict": 3}).status == "success"
        v2 = httpx.post(f"{base}/api/show", json={"model": "pirate:v2"}, timeout=30).json()
        assert v2["system"] == SYSTEM and "num_predict                    3" in v2["parameters"], v2["parameters"]
    finally:
        conftest._stop_server(proc, log)


def test_bad_settings_are_refused_and_nothing_is_made(store):  # noqa: F811
    proc, base, log = serve(store, "create-bad")
    try:
        c = client(base)
        before = sorted(m.model for m in c.list().models)
        for kwargs, said in [({"parameters": {"temperature": "hot"}}, "temperature"),
                             ({"parameters": {"nonsense": 1}}, "unknown parameter 'nonsense'"),
                             ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0]"),
                             ({"messages": [{"role": "user"}]}, "messages[0]")]:
            with pytest.raises(ollama.ResponseError) as info:
                c.create(model="bad:one", from_=QWEN, **kwargs)
            assert said in str(info.value) and info.value.status_code == 400, (kwargs, str(info.value))
        assert sorted(m.model for m in c.list().models) == before
    finally:
        conftest._stop_server(proc, log)
