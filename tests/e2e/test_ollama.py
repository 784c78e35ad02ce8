"""End-to-end: the official `ollama` Python client against a real `minerva serve` (Qwen 0.5B)."""
import datetime
import json
import re
import os

import httpx
import ollama
import pytest

import conftest
from conftest import CTX_SIZE, MODEL_ID

GREEDY = {"temperature": 0}
COUNT = [{"role": "user", "content": "Count from 1 to 50, separated by commas."}]
HAIKU = [{"role": "user", "content": "Write a haiku about the sea."}]
# What Qwen's chat template renders for a system message and a user message (see
# crates/minerva-llama/tests/chat_template.rs).
RAW_PROMPT = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nName a color.<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def oc(server):
    return ollama.Client(host=server, timeout=120)


def warm(oc, **kw):
    """Runs a request once first. The engine's greedy reply to a prompt read from the prompt
    cache can differ from the reply to the same prompt computed whole (one token recomputed
    against cached KV rounds differently), so a test comparing two replies first puts the
    prompt in the cache, and both compared requests read it from there."""
    if "messages" in kw:
        oc.chat(model=MODEL_ID, options={**GREEDY, "num_predict": 1}, **kw)
    else:
        oc.generate(model=MODEL_ID, options={**GREEDY, "num_predict": 1}, **kw)


def still_serving(oc):
    r = oc.chat(model=MODEL_ID, messages=HAIKU, options={**GREEDY, "num_predict": 3})
    assert r.done and r.message.content


def expect_error(status, call):
    with pytest.raises(ollama.ResponseError) as info:
        call()
    assert info.value.status_code == status, info.value
    assert isinstance(info.value.error, str) and info.value.error
    return info.value.error


def assert_final(r, max_eval=None):
    assert r.done is True
    assert r.done_reason in ("stop", "length")
    assert r.prompt_eval_count > 0
    assert r.eval_count > 0
    if max_eval is not None:
        assert r.eval_count <= max_eval
    assert r.total_duration >= r.eval_duration > 0
    assert r.prompt_eval_duration > 0
    assert r.load_duration >= 0
    datetime.datetime.fromisoformat(r.created_at.replace("Z", "+00:00"))


# --- detection and listings -------------------------------------------------------------


def test_root_says_ollama_is_running_for_get_and_head(http):
    r = http.get("/")
    assert r.status_code == 200
    assert r.text == "Ollama is running"
    h = http.head("/")
    assert h.status_code == 200
    assert h.content == b""


def test_version(http):
    r = http.get("/api/version")
    assert r.status_code == 200
    version = r.json()["version"]
    major, minor, patch = (int(p) for p in version.split("."))
    assert (major, minor) >= (0, 5)


def check_details(details):
    assert details.format == "gguf"
    assert details.family == "qwen2"
    assert list(details.families) == ["qwen2"]
    assert details.quantization_level == "Q4_K_M"
    # 630,167,424 parameters (the file stores the output matrix apart from the embeddings),
    # written as Ollama writes them.
    assert details.parameter_size == "630.17M"


def stamped_digest(path):
    with open(path + ".verified") as f:
        return f.read().split()[2]


def test_list_shows_the_served_model(oc, server):
    models = oc.list().models
    assert [m.model for m in models] == [MODEL_ID]
    m = models[0]
    path = os.environ["MINERVA_QWEN_GGUF"]
    assert m.size == os.path.getsize(path)
    assert m.digest == stamped_digest(path)
    assert len(m.digest) == 64
    assert m.modified_at.year >= 2024
    check_details(m.details)
    # Ollama lists capabilities in /api/tags too (the client's ListResponse does not type them).
    raw = httpx.get(f"{server}/api/tags").json()["models"][0]
    assert raw["capabilities"] == ["completion", "tools", "embedding", "insert"]


def test_show_has_template_details_and_model_info(oc):
    s = oc.show(MODEL_ID)
    assert "<|im_start|>" in s.template
    check_details(s.details)
    # Qwen's template renders the tools it is given.
    assert s.capabilities == ["completion", "tools", "embedding", "insert"]
    info = s.modelinfo
    assert info["general.architecture"] == "qwen2"
    assert info["qwen2.context_length"] == 32768
    assert round(info["general.parameter_count"] / 1e4) == 63017
    assert "tokenizer.chat_template" not in info
    assert "num_ctx" in s.parameters and str(CTX_SIZE) in s.parameters


def test_ps_lists_the_loaded_model(oc):
    models = oc.ps().models
    assert [m.model for m in models] == [MODEL_ID]
    m = models[0]
    assert m.name == MODEL_ID
    assert m.expires_at.year > 2100
    assert m.size_vram == 0
    assert m.context_length == CTX_SIZE
    check_details(m.details)


# --- chat --------------------------------------------------------------------------------


def test_chat_non_stream(oc):
    r = oc.chat(model=MODEL_ID, messages=HAIKU, options={**GREEDY, "num_predict": 40})
    assert r.model == MODEL_ID
    assert r.message.role == "assistant"
    assert len(r.message.content.strip()) > 10
    assert_final(r, max_eval=40)


def test_chat_stream_matches_non_stream(oc):
    options = {**GREEDY, "num_predict": 40}
    warm(oc, messages=HAIKU)
    full = oc.chat(model=MODEL_ID, messages=HAIKU, options=options)
    chunks = list(oc.chat(model=MODEL_ID, messages=HAIKU, options=options, stream=True))
    assert len(chunks) > 3
    assert all(not c.done and c.done_reason is None for c in chunks[:-1])
    assert all(c.message.role == "assistant" for c in chunks)
    last = chunks[-1]
    assert_final(last, max_eval=40)
    assert last.message.content == ""
    assert "".join(c.message.content for c in chunks) == full.message.content
    assert last.eval_count == full.eval_count
    assert last.prompt_eval_count == full.prompt_eval_count


def test_stream_is_the_default_and_is_ndjson(http):
    body = {"model": MODEL_ID, "messages": HAIKU, "options": {**GREEDY, "num_predict": 8}}
    with http.stream("POST", "/api/chat", json=body) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert len(lines) >= 2
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    assert lines[-1]["eval_count"] == 8
    assert lines[-1]["done_reason"] == "length"
    for key in ("total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_duration"):
        assert isinstance(lines[-1][key], int), key


def test_num_predict_limits_the_reply(oc):
    r = oc.chat(model=MODEL_ID, messages=COUNT, options={**GREEDY, "num_predict": 5})
    assert r.done_reason == "length"
    assert r.eval_count == 5
    g = oc.generate(model=MODEL_ID, prompt=COUNT[0]["content"], options={"num_predict": 5})
    assert g.done_reason == "length"
    assert g.eval_count == 5


def test_seed_makes_sampling_reproducible(oc):
    def sample(seed):
        options = {"seed": seed, "temperature": 1.2, "num_predict": 24}
        return oc.chat(model=MODEL_ID, messages=[{"role": "user", "content": "Invent a name for a cat."}], options=options).message.content

    first = sample(42)
    assert sample(42) == first
    assert any(sample(s) != first for s in (7, 8, 9))


def test_greedy_chat_equals_the_openai_route(oc, client):
    messages = [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Explain what a hash map is."},
    ]
    warm(oc, messages=messages)
    o = client.chat.completions.create(model=MODEL_ID, messages=messages, temperature=0, max_tokens=40)
    r = oc.chat(model=MODEL_ID, messages=messages, options={**GREEDY, "num_predict": 40})
    assert r.message.content == o.choices[0].message.content
    assert r.prompt_eval_count == o.usage.prompt_tokens
    assert r.eval_count == o.usage.completion_tokens


def test_stop_option_cuts_the_reply(oc):
    r = oc.chat(model=MODEL_ID, messages=COUNT, options={**GREEDY, "num_predict": 60, "stop": ["7"]})
    assert r.done_reason == "stop"
    assert "7" not in r.message.content
    assert "6" in r.message.content


def test_tools_reach_the_chat_template(oc):
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Get the weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    plain = oc.chat(model=MODEL_ID, messages=messages, options={**GREEDY, "num_predict": 1})
    with_tools = oc.chat(model=MODEL_ID, messages=messages, tools=[tool], options={**GREEDY, "num_predict": 1})
    assert with_tools.prompt_eval_count > plain.prompt_eval_count + 20


def test_keep_alive_and_load_time_options_are_accepted(oc):
    r = oc.chat(
        model=MODEL_ID,
        messages=HAIKU,
        keep_alive="5m",
        options={**GREEDY, "num_predict": 3, "num_ctx": 8192, "num_gpu": 0, "num_thread": 2, "not_an_option": 1},
    )
    assert r.eval_count == 3


def test_empty_requests_only_load_the_model(oc):
    r = oc.chat(model=MODEL_ID, messages=[])
    assert r.done is True and r.done_reason == "load"
    g = oc.generate(model=MODEL_ID, prompt="")
    assert g.done is True and g.done_reason == "load" and g.response == ""


def test_logprobs(oc):
    r = oc.generate(model=MODEL_ID, prompt="Say hello.", logprobs=True, top_logprobs=2, options={**GREEDY, "num_predict": 6})
    assert len(r.logprobs) == r.eval_count == 6
    for lp in r.logprobs:
        assert lp.logprob <= 0
        assert len(lp.top_logprobs) == 2
        # Greedy: the chosen token is the most likely one.
        assert lp.top_logprobs[0].token == lp.token


# --- generate ----------------------------------------------------------------------------


def test_generate_renders_the_prompt_as_a_user_message(oc):
    options = {**GREEDY, "num_predict": 40}
    warm(oc, messages=HAIKU)
    g = oc.generate(model=MODEL_ID, prompt=HAIKU[0]["content"], options=options)
    c = oc.chat(model=MODEL_ID, messages=HAIKU, options=options)
    assert g.model == MODEL_ID
    assert len(g.response.strip()) > 10
    assert g.response == c.message.content
    assert_final(g, max_eval=40)
    # The prompt's and the reply's token ids, as Ollama still sends them.
    assert len(g.context) == g.prompt_eval_count + g.eval_count


def test_generate_continues_from_a_returned_context(oc, http):
    options = {**GREEDY, "num_predict": 20}
    first = oc.generate(model=MODEL_ID, prompt="My name is Ada. Say hello to me.", options=options)
    assert len(first.context) == first.prompt_eval_count + first.eval_count
    second = oc.generate(model=MODEL_ID, prompt="What is my name?", context=first.context, options=options)
    assert "Ada" in second.response
    # The earlier tokens are the prompt's prefix: the prompt cache reused them.
    assert second.context[:len(first.context)] == first.context
    assert second.prompt_eval_count > len(first.context)
    alone = oc.generate(model=MODEL_ID, prompt="What is my name?", options=options)
    assert "Ada" not in alone.response
    # Streamed: the last object carries the context, the others none.
    parts = list(oc.generate(model=MODEL_ID, prompt="What is my name?", context=first.context,
                             options=options, stream=True))
    assert all(p.context is None for p in parts[:-1]) and parts[-1].context == second.context


def test_generate_stream_matches_non_stream(oc):
    options = {**GREEDY, "num_predict": 30}
    warm(oc, prompt="Why is the sky blue?")
    full = oc.generate(model=MODEL_ID, prompt="Why is the sky blue?", options=options)
    chunks = list(oc.generate(model=MODEL_ID, prompt="Why is the sky blue?", options=options, stream=True))
    assert len(chunks) > 3
    assert all(not c.done for c in chunks[:-1])
    assert_final(chunks[-1], max_eval=30)
    assert "".join(c.response for c in chunks) == full.response


def test_system_and_raw_prompt(oc):
    options = {**GREEDY, "num_predict": 20}
    warm(oc, prompt=RAW_PROMPT, raw=True)
    with_system = oc.generate(model=MODEL_ID, system="Be brief.", prompt="Name a color.", options=options)
    raw = oc.generate(model=MODEL_ID, prompt=RAW_PROMPT, raw=True, options=options)
    assert raw.response == with_system.response
    assert raw.prompt_eval_count == with_system.prompt_eval_count
    # Without the template, the same words are a different prompt.
    plain_raw = oc.generate(model=MODEL_ID, prompt="Name a color.", raw=True, options=options)
    assert plain_raw.prompt_eval_count < with_system.prompt_eval_count


def test_raw_generate_equals_openai_text_completion(oc, client):
    prompt = "def fibonacci(n):"
    warm(oc, prompt=prompt, raw=True)
    o = client.completions.create(model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=24)
    g = oc.generate(model=MODEL_ID, prompt=prompt, raw=True, options={**GREEDY, "num_predict": 24})
    assert g.response == o.choices[0].text


# --- errors: each followed by a good request ---------------------------------------------


@pytest.mark.parametrize("endpoint", ["chat", "generate", "show"])
def test_unknown_model_is_404(oc, endpoint):
    calls = {
        "chat": lambda: oc.chat(model="no-such-model", messages=HAIKU),
        "generate": lambda: oc.generate(model="no-such-model", prompt="hi"),
        "show": lambda: oc.show("no-such-model"),
    }
    error = expect_error(404, calls[endpoint])
    assert error == 'model "no-such-model" not found, try pulling it first'
    # An id that already has a tag has no `:latest` alias: two tags are not a valid name.
    error = expect_error(400, lambda: oc.generate(model=MODEL_ID + ":latest", prompt="hi"))
    assert "invalid model name" in error
    still_serving(oc)


def test_format_json_is_one_json_object(oc):
    """`format: "json"` is enforced while sampling: whatever the prompt, the reply parses."""
    chat = oc.chat(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Describe a cat: give its name and colour."}],
        format="json",
        options={"temperature": 0, "num_predict": 300},
    )
    assert chat.done_reason == "stop"
    assert isinstance(json.loads(chat.message.content), dict)
    # A prompt that asks for something else entirely still gets a JSON object, streamed.
    parts = list(oc.generate(model=MODEL_ID, prompt="Write a haiku about the sea.", format="json",
                             stream=True, options={"seed": 7, "num_predict": 300}))
    assert parts[-1].done_reason == "stop"
    assert isinstance(json.loads("".join(p.response for p in parts)), dict)
    still_serving(oc)


def test_format_schema_with_an_unsupported_keyword_is_refused(oc):
    """Schemas are enforced (test_structured.py); a keyword outside the supported list is a 400
    naming it, before anything is generated."""
    fmt = {"type": "object", "properties": {"a": {"type": "string", "contentEncoding": "base64"}}}
    error = expect_error(400, lambda: oc.chat(model=MODEL_ID, messages=HAIKU, format=fmt))
    assert "'contentEncoding' at /properties/a" in error
    expect_error(400, lambda: oc.generate(model=MODEL_ID, prompt="hi", format=fmt, stream=True).__next__())
    still_serving(oc)


BAD_OPTIONS = [
    ({"temperature": "hot"}, 'option "temperature" must be of type float32'),
    ({"num_predict": "many"}, 'option "num_predict" must be of type integer'),
    ({"seed": True}, 'option "seed" must be of type integer'),
    ({"stop": "x"}, 'option "stop" must be of type array'),
    ({"stop": [1, 2]}, 'option "stop" must be of an array of strings'),
    ({"num_gpu": "all"}, 'option "num_gpu" must be of type integer'),
    ({"top_p": 1.5}, "top_p"),
    ({"temperature": -1}, "temperature"),
    ({"top_k": -2}, "top_k"),
    ({"repeat_last_n": -5}, "repeat_last_n"),
    ({"num_predict": -7}, "num_predict"),
    ({"mirostat": 2}, "mirostat"),
]


@pytest.mark.parametrize("options,message", BAD_OPTIONS, ids=[json.dumps(o) for o, _ in BAD_OPTIONS])
def test_bad_options_are_400(oc, options, message):
    error = expect_error(400, lambda: oc.chat(model=MODEL_ID, messages=HAIKU, options=options))
    assert message in error
    expect_error(400, lambda: oc.generate(model=MODEL_ID, prompt="hi", options=options))
    still_serving(oc)


def test_unsupported_fields_are_400(oc):
    cases = [
        lambda: oc.chat(model=MODEL_ID, messages=[{"role": "user", "content": "what is this?", "images": ["aGVsbG8="]}]),
        lambda: oc.generate(model=MODEL_ID, prompt="what is this?", images=["aGVsbG8="]),
        lambda: oc.chat(model=MODEL_ID, messages=HAIKU, think=True),
        lambda: oc.generate(model=MODEL_ID, prompt="hi", template="{{ if .Prompt }}"),
        lambda: oc.generate(model=MODEL_ID, prompt="hi", context=[-1]),
        lambda: oc.generate(model=MODEL_ID, prompt="hi", context=[10**9]),
        lambda: oc.generate(model=MODEL_ID, prompt="hi", context=[1, 2], raw=True),
        lambda: oc.generate(model=MODEL_ID, prompt="hi", system="x", raw=True),
        lambda: oc.chat(model=MODEL_ID, messages=[{"role": "wizard", "content": "hi"}]),
        lambda: oc.generate(model=MODEL_ID, prompt="hi", logprobs=True, top_logprobs=50),
    ]
    for call in cases:
        expect_error(400, call)
        still_serving(oc)


def test_prompt_longer_than_the_context_is_400(oc):
    prompt = "hello " * (CTX_SIZE * 2)
    error = expect_error(400, lambda: oc.generate(model=MODEL_ID, prompt=prompt, stream=True).__next__())
    assert "context" in error
    still_serving(oc)


@pytest.mark.parametrize(
    "path,body",
    [
        ("/api/chat", b'{"model": "x", "messages": ['),
        ("/api/chat", b"[1, 2]"),
        ("/api/generate", b""),
        ("/api/generate", json.dumps({"prompt": "hi"}).encode()),
        ("/api/generate", json.dumps({"model": MODEL_ID, "prompt": 5}).encode()),
        ("/api/chat", json.dumps({"model": MODEL_ID, "messages": "hi"}).encode()),
        ("/api/chat", json.dumps({"model": MODEL_ID, "messages": [{"role": "user", "content": 5}]}).encode()),
        ("/api/chat", json.dumps({"model": MODEL_ID, "messages": HAIKU, "options": [1]}).encode()),
        ("/api/show", b"{}"),
    ],
)
def test_malformed_bodies_get_ollama_shaped_400(http, oc, path, body):
    r = http.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert set(r.json()) == {"error"}
    assert isinstance(r.json()["error"], str)
    still_serving(oc)


# --- a model whose id has no tag answers to `ID:latest` too --------------------------------


@pytest.fixture(scope="module")
def untagged_server(tmp_path_factory):
    link = tmp_path_factory.mktemp("models") / "tiny-qwen.gguf"
    os.symlink(os.environ["MINERVA_QWEN_GGUF"], link)
    yield from conftest._extra_server("untagged", [], model=str(link))


def test_untagged_id_answers_to_latest_alias(untagged_server):
    oc = ollama.Client(host=untagged_server, timeout=120)
    listed = oc.list().models
    assert [m.model for m in listed] == ["tiny-qwen"]
    # Hashed in the background at start (see test_contract.py): none yet, or the file's sha256.
    assert listed[0].digest == "" or re.fullmatch(r"[0-9a-f]{64}", listed[0].digest)
    for name in ("tiny-qwen", "tiny-qwen:latest"):
        r = oc.generate(model=name, prompt="Say hi.", options={**GREEDY, "num_predict": 3})
        assert r.model == name
        assert r.eval_count == 3
        assert oc.show(name).details.family == "qwen2"
    expect_error(404, lambda: oc.generate(model="tiny-qwen:7b", prompt="hi"))
    expect_error(404, lambda: oc.show("tiny:latest"))
    assert httpx.get(f"{untagged_server}/").text == "Ollama is running"
