"""The OpenAI request contract beyond sampling (README "Request fields"): `developer` messages,
fields sent as `null`, fields refused by name, `n` choices on /v1/completions, and the digest
of a model served by path.

Most tests use the shared Qwen server; the digest test starts one of its own over a hard link
to the Gemma GGUF (a file without a `.verified` stamp, so its digest must be computed).
"""
import hashlib
import os
import shutil
import tempfile
import time
import uuid

import httpx
import openai
import pytest

from conftest import LOG_DIR, MODEL_ID, _extra_server, _required_env, _start_server, _stop_server

CHAT = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0}


def metric(http, name):
    for line in http.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_developer_message_counts_as_system(client):
    """Qwen's template has no `developer` role (it would drop the message): it becomes `system`."""
    def prompt_tokens(role):
        r = client.chat.completions.create(
            model=MODEL_ID, max_tokens=1, temperature=0,
            messages=[{"role": role, "content": "Answer in French, briefly."},
                      {"role": "user", "content": "Hello"}])
        return r.usage.prompt_tokens

    without = client.chat.completions.create(
        model=MODEL_ID, max_tokens=1, temperature=0,
        messages=[{"role": "user", "content": "Hello"}]).usage.prompt_tokens
    developer, system = prompt_tokens("developer"), prompt_tokens("system")
    assert developer == system
    assert developer != without


NULLS = {
    "logprobs": None, "top_logprobs": None, "n": None, "stop": None, "seed": None, "temperature": None,
    "top_p": None, "frequency_penalty": None, "presence_penalty": None, "logit_bias": None,
    "max_completion_tokens": None, "stream": None, "stream_options": None, "audio": None,
    "modalities": None, "prediction": None, "web_search_options": None, "metadata": None,
    "store": None, "service_tier": None, "safety_identifier": None, "prompt_cache_key": None,
    "prompt_cache_retention": None, "verbosity": None, "moderation": None, "reasoning_effort": None,
    "response_format": None, "tools": None,
}


def test_null_fields_mean_absent(http):
    r = http.post("/v1/chat/completions", json={**CHAT, **NULLS})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["logprobs"] is None
    # Assistant message fields sent as null (as SDKs replaying a conversation do).
    messages = [{"role": "user", "content": "Hi", "name": None},
                {"role": "assistant", "content": "Hello!", "tool_calls": None, "function_call": None,
                 "refusal": None, "audio": None, "name": None},
                {"role": "user", "content": "Bye"}]
    r = http.post("/v1/chat/completions", json={**CHAT, "messages": messages})
    assert r.status_code == 200, r.text
    r = http.post("/v1/completions", json={
        "model": MODEL_ID, "prompt": "def f(", "max_tokens": 2, "temperature": 0, "logprobs": None,
        "n": None, "stop": None, "echo": None, "suffix": None, "best_of": None, "stream": None,
        "stream_options": None, "seed": None, "logit_bias": None, "user": "u"})
    assert r.status_code == 200, r.text


def test_fields_without_effect_are_accepted(client):
    r = client.chat.completions.create(
        model=MODEL_ID, max_tokens=2, temperature=0, messages=[{"role": "user", "content": "Hi"}],
        user="u1", store=False, metadata={"k": "v"}, service_tier="auto", safety_identifier="s",
        prompt_cache_key="p", verbosity="medium", modalities=["text"],
        prediction={"type": "content", "content": "Hello"})
    assert r.choices[0].message.content is not None


@pytest.mark.parametrize("field,value", [
    ("audio", {"voice": "alloy", "format": "mp3"}),
    ("modalities", ["text", "audio"]),
    ("web_search_options", {}),
    ("functions", [{"name": "f", "parameters": {"type": "object"}}]),
    ("function_call", "auto"),
    ("moderation", {"model": "omni-moderation-latest"}),
    ("verbosity", "low"),
])
def test_unsupported_chat_fields_are_refused_by_name(http, field, value):
    r = http.post("/v1/chat/completions", json={**CHAT, field: value})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == field
    assert error["code"] == "unsupported_parameter"


def test_unsupported_message_fields_are_refused(http):
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": None, "audio": {"id": "a1"}}]
    r = http.post("/v1/chat/completions", json={**CHAT, "messages": messages})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "messages[1].audio"


@pytest.mark.parametrize("field,value", [("echo", True), ("best_of", 2)])
def test_unsupported_completion_fields_are_refused_by_name(http, field, value):
    r = http.post("/v1/completions", json={"model": MODEL_ID, "prompt": "a", "max_tokens": 1, field: value})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == field
    assert r.json()["error"]["code"] == "unsupported_parameter"


@pytest.mark.parametrize("n", [0, 17])
def test_n_out_of_range_is_refused(http, n):
    r = http.post("/v1/completions", json={"model": MODEL_ID, "prompt": "a", "max_tokens": 1, "n": n})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "n"


def fresh_prompt():
    """A prompt no earlier request cached."""
    return f"# {uuid.uuid4().hex}\n# A function that adds two numbers, and one that multiplies them.\ndef add("


def test_n_choices_share_the_prompt(client, http):
    cached_before = metric(http, "minerva_cache_hit_tokens_total")
    r = client.completions.create(model=MODEL_ID, prompt=fresh_prompt(), n=2, max_tokens=6, seed=11,
                                  temperature=1.0)
    assert [c.index for c in r.choices] == [0, 1]
    assert all(c.finish_reason in ("stop", "length") for c in r.choices)
    prompt = r.usage.prompt_tokens
    # The prompt counts once; the completions of both choices are summed.
    assert r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == prompt + r.usage.completion_tokens
    # Choice 1 took all of the prompt but its last token from choice 0's KV.
    assert metric(http, "minerva_cache_hit_tokens_total") - cached_before >= prompt - 1


def test_n_choices_are_reproducible_with_a_seed(client):
    """Choice i samples with seed + i. Without the prompt cache, so that both requests compute the
    same logits (cached and uncached prompts may differ by a near-tie, see the README)."""
    prompt = fresh_prompt()
    ask = dict(model=MODEL_ID, prompt=prompt, n=2, max_tokens=8, seed=5, temperature=1.5,
               extra_body={"cache_prompt": False})
    first, second = client.completions.create(**ask), client.completions.create(**ask)
    assert [c.text for c in first.choices] == [c.text for c in second.choices]


def test_n_choices_stream_with_their_index(client, http):
    cached_before = metric(http, "minerva_cache_hit_tokens_total")
    stream = client.completions.create(model=MODEL_ID, prompt=fresh_prompt(), n=2, max_tokens=5, stream=True,
                                       stream_options={"include_usage": True}, temperature=0)
    texts, finished, usage = {0: "", 1: ""}, {}, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            texts[c.index] += c.text
            if c.finish_reason:
                finished[c.index] = c.finish_reason
    assert sorted(finished) == [0, 1]
    assert usage is not None and usage.completion_tokens <= 10
    assert metric(http, "minerva_cache_hit_tokens_total") - cached_before >= usage.prompt_tokens - 1
    # Greedy: both choices read the same prompt and agree (near-ties aside, see the README).
    assert texts[0] and texts[1]


@pytest.fixture(scope="module")
def one_sequence_server():
    """One sequence at a time: choices beyond it wait, as separate requests do."""
    yield from _extra_server("one-sequence", ["--parallel", "1"])


def test_more_choices_than_sequences_wait_for_one(one_sequence_server):
    with httpx.Client(base_url=one_sequence_server, timeout=300) as http:
        cached_before = metric(http, "minerva_cache_hit_tokens_total")
        r = http.post("/v1/completions", json={"model": MODEL_ID, "prompt": fresh_prompt(), "n": 3,
                                                "max_tokens": 3, "temperature": 0})
        assert r.status_code == 200, r.text
        body = r.json()
        assert [c["index"] for c in body["choices"]] == [0, 1, 2]
        # Choices 1 and 2 found the prompt in the sequence choice 0 left (in place).
        prompt = body["usage"]["prompt_tokens"]
        assert metric(http, "minerva_cache_hit_tokens_total") - cached_before >= 2 * (prompt - 1)


@pytest.fixture(scope="module")
def path_model():
    """A GGUF without a `.verified` stamp (a hard link to the Gemma file, else a copy)."""
    gemma = _required_env("MINERVA_GEMMA_GGUF")
    directory = tempfile.mkdtemp(prefix="minerva-digest-")
    path = os.path.join(directory, "digest-test.gguf")
    try:
        os.link(gemma, path)
    except OSError:
        shutil.copyfile(gemma, path)
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    yield path, sha.hexdigest()
    shutil.rmtree(directory, ignore_errors=True)


def test_digest_of_a_model_served_by_path(path_model):
    path, expected = path_model
    store = tempfile.mkdtemp(prefix="minerva-store-")
    proc, base, log = _start_server([], os.path.join(LOG_DIR, "minerva-e2e-digest-{port}.log"), model=path,
                                    store=store)
    try:
        deadline = time.time() + 60
        while True:
            tags = httpx.get(f"{base}/api/tags").json()["models"]
            entry = next(m for m in tags if m["name"].startswith("digest-test"))
            if entry["digest"] or time.time() > deadline:
                break
            time.sleep(0.2)
        assert entry["digest"] == expected
        models = httpx.get(f"{base}/v1/models").json()["data"]
        assert next(m for m in models if m["id"].startswith("digest-test"))["meta"]["digest"] == expected
        ps = httpx.get(f"{base}/api/ps").json()["models"]
        assert next(m for m in ps if m["name"].startswith("digest-test"))["digest"] == expected
        # Kept for the next start.
        with open(os.path.join(store, "path-digests.json")) as f:
            assert expected in f.read()
    finally:
        _stop_server(proc, log)
    shutil.rmtree(store, ignore_errors=True)


def test_openai_client_sends_developer_and_n(client):
    """The official client's own request shapes for the fields above."""
    r = client.completions.create(model=MODEL_ID, prompt="x = ", n=2, max_tokens=2, temperature=0)
    assert len(r.choices) == 2
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "Hi"}],
                                       max_tokens=1, audio={"voice": "alloy", "format": "mp3"},
                                       modalities=["text", "audio"])
    assert e.value.body["param"] in ("audio", "modalities")
