"""End-to-end: the official `openai` client against a real `minerva serve` and the real Qwen model."""
import time
import unicodedata

from conftest import MODEL_ID

HAIKU = [{"role": "user", "content": "Write a haiku about the sea."}]


def chat_text(client, **kw):
    r = client.chat.completions.create(model=MODEL_ID, **kw)
    return r


def stream_chat(client, **kw):
    chunks = list(client.chat.completions.create(model=MODEL_ID, stream=True, **kw))
    return chunks


def test_models_lists_the_served_model(client):
    ids = [m.id for m in client.models.list().data]
    assert ids == [MODEL_ID]


def test_chat_non_stream_has_content_and_usage(client):
    r = chat_text(client, messages=HAIKU, temperature=0, max_tokens=40)
    assert r.object == "chat.completion"
    assert r.id.startswith("chatcmpl-")
    choice = r.choices[0]
    assert choice.message.role == "assistant"
    assert len(choice.message.content.strip()) > 10
    assert choice.finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens > 10
    assert 0 < r.usage.completion_tokens <= 40
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_chat_stream_matches_non_stream(client):
    full = chat_text(client, messages=HAIKU, temperature=0, max_tokens=40)
    chunks = stream_chat(
        client, messages=HAIKU, temperature=0, max_tokens=40, stream_options={"include_usage": True}
    )
    assert len({c.id for c in chunks}) == 1, "one id per completion"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    content_chunks = [c for c in chunks if c.choices]
    assert content_chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in content_chunks if c.choices[0].finish_reason]
    assert finishes == [full.choices[0].finish_reason]
    assert content_chunks[-1].choices[0].finish_reason is not None
    text = "".join(c.choices[0].delta.content or "" for c in content_chunks)
    assert text == full.choices[0].message.content
    usage_chunk = chunks[-1]
    assert usage_chunk.choices == []
    assert usage_chunk.usage.completion_tokens == full.usage.completion_tokens
    assert usage_chunk.usage.prompt_tokens == full.usage.prompt_tokens


def test_stream_without_include_usage_has_no_usage(client):
    chunks = stream_chat(client, messages=HAIKU, temperature=0, max_tokens=5)
    assert all(getattr(c, "usage", None) is None for c in chunks)


def test_completions_stream_matches_non_stream(client):
    prompt = "def fibonacci(n):\n"
    full = client.completions.create(model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=48)
    assert full.object == "text_completion"
    assert full.usage.completion_tokens > 0
    chunks = list(
        client.completions.create(model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=48, stream=True)
    )
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == full.choices[0].text
    assert chunks[-1].choices[0].finish_reason == full.choices[0].finish_reason


def test_max_tokens_gives_length(client):
    r = client.completions.create(model=MODEL_ID, prompt="Count: 1, 2, 3,", temperature=0, max_tokens=7)
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 7
    c = chat_text(client, messages=HAIKU, temperature=0, max_tokens=3)
    assert c.choices[0].finish_reason == "length"
    assert c.usage.completion_tokens == 3


def test_completions_default_max_tokens_is_openais_16(client):
    r = client.completions.create(model=MODEL_ID, prompt="Count: 1, 2, 3,", temperature=0)
    assert r.usage.completion_tokens <= 16


def test_stop_string_cuts_and_never_leaks(client):
    prompt = "Count from 1 to 20 separated by commas: 1,"
    free = client.completions.create(model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=40).choices[0].text
    assert " 7," in free, free
    cut = free.index(" 7,")
    for stream in (False, True):
        if stream:
            chunks = list(
                client.completions.create(
                    model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=40, stop=[" 7,", "zzz"], stream=True
                )
            )
            text = "".join(c.choices[0].text for c in chunks if c.choices)
            finish = chunks[-1].choices[0].finish_reason
        else:
            r = client.completions.create(
                model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=40, stop=[" 7,", "zzz"]
            )
            text, finish = r.choices[0].text, r.choices[0].finish_reason
        assert text == free[:cut], (stream, text)
        assert finish == "stop"


def test_chat_stop_string(client):
    messages = [{"role": "user", "content": "List the days of the week, one per line."}]
    free = chat_text(client, messages=messages, temperature=0, max_tokens=60).choices[0].message.content
    assert "Wednesday" in free, free
    r = chat_text(client, messages=messages, temperature=0, max_tokens=60, stop="Wednesday")
    assert r.choices[0].message.content == free[: free.index("Wednesday")]
    assert r.choices[0].finish_reason == "stop"


def test_seed_reproducibility(client):
    kw = dict(messages=HAIKU, temperature=1.0, top_p=1.0, max_tokens=24)
    a = chat_text(client, seed=42, **kw).choices[0].message.content
    b = chat_text(client, seed=42, **kw).choices[0].message.content
    assert a == b
    others = {chat_text(client, seed=s, **kw).choices[0].message.content for s in (1, 2, 3)}
    assert others != {a}, "different seeds should not all give the seed-42 text"


def test_chinese_and_emoji_arrive_as_valid_utf8(client):
    messages = [{"role": "user", "content": "用中文写一句问候语，并在末尾加上一个表情符号 😊。"}]
    chunks = stream_chat(client, messages=messages, temperature=0, max_tokens=40)
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    text = "".join(pieces)
    assert "\ufffd" not in text
    assert any("\u4e00" <= ch <= "\u9fff" for ch in text), text
    for piece in pieces:
        # Every chunk is whole characters: no lone surrogate or replacement character.
        assert "\ufffd" not in piece
        assert all(unicodedata.category(ch) != "Cs" for ch in piece)
    full = chat_text(client, messages=messages, temperature=0, max_tokens=40).choices[0].message.content
    assert full == text


def test_first_chunk_arrives_before_generation_ends(client):
    stream = client.chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Write a long story about a dragon."}],
        temperature=0,
        max_tokens=64,
        stream=True,
    )
    arrivals = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic())
    assert len(arrivals) >= 32, "tokens must arrive as separate chunks"
    # 64 tokens take well over a second here; a server that buffered would deliver them together.
    assert arrivals[-1] - arrivals[0] > 0.5, arrivals[-1] - arrivals[0]


def test_chat_logprobs_shape(client):
    r = chat_text(client, messages=HAIKU, temperature=0, max_tokens=8, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for t in content:
        assert t.logprob <= 0
        assert len(t.top_logprobs) == 3
        lps = [x.logprob for x in t.top_logprobs]
        assert lps == sorted(lps, reverse=True)
        # Greedy: the chosen token is the most likely one.
        assert t.top_logprobs[0].token == t.token
        assert abs(t.top_logprobs[0].logprob - t.logprob) < 1e-4
        assert bytes(t.bytes).decode("utf-8", "replace") == t.token


def test_completion_logprobs_shape(client):
    r = client.completions.create(model=MODEL_ID, prompt="The capital of France is", temperature=0, max_tokens=5, logprobs=2)
    lp = r.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 5
    assert "".join(lp.tokens) == r.choices[0].text
    assert lp.text_offset[0] == 0
    for tok, top in zip(lp.tokens, lp.top_logprobs):
        assert len(top) == 2
        assert max(top, key=top.get) == tok


def test_token_ids_as_prompt(client, http):
    tokens = http.post("/tokenize", json={"content": "def add(a, b):\n"}).json()["tokens"]
    by_text = client.completions.create(model=MODEL_ID, prompt="def add(a, b):\n", temperature=0, max_tokens=12)
    by_ids = client.completions.create(model=MODEL_ID, prompt=tokens, temperature=0, max_tokens=12)
    assert by_ids.choices[0].text == by_text.choices[0].text


def test_logit_bias_bans_and_forces_tokens(client, http):
    prompt = "The capital of France is"
    free = client.completions.create(model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=3, logprobs=0)
    first = free.choices[0].logprobs.tokens[0]
    first_id = http.post("/tokenize", json={"content": first}).json()["tokens"]
    assert len(first_id) == 1, first_id
    banned = client.completions.create(
        model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=3, logprobs=0,
        logit_bias={str(first_id[0]): -100},
    )
    assert banned.choices[0].logprobs.tokens[0] != first
    forced_id = http.post("/tokenize", json={"content": " banana"}).json()["tokens"]
    forced = client.completions.create(
        model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=1, logit_bias={str(forced_id[0]): 100}
    )
    assert forced.choices[0].text == http.post("/detokenize", json={"tokens": forced_id[:1]}).json()["content"]


def test_penalties_change_greedy_output(client):
    prompt = "Repeat after me: la la la la la la la la"
    base = client.completions.create(model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=24).choices[0].text
    penalised = client.completions.create(
        model=MODEL_ID, prompt=prompt, temperature=0, max_tokens=24, frequency_penalty=2.0, presence_penalty=2.0
    ).choices[0].text
    assert penalised != base
    assert penalised.count("la") < base.count("la")


def test_json_object_response_format(client):
    """`response_format: json_object` is enforced while sampling; `json_schema` is refused."""
    import json

    import openai
    import pytest

    r = client.chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "user", "content": "Reply in JSON with a key colours holding a list of three colour names."}],
        response_format={"type": "json_object"},
        temperature=0,
        max_tokens=300,
    )
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content), dict)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL_ID,
            messages=HAIKU,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        )
    assert info.value.body["param"] == "response_format"
