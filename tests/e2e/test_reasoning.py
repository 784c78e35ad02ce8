"""Reasoning blocks end to end: the real Qwen model served with a chat template that opens a
`<think>` block at the end of the generation prompt (tests/e2e/think.jinja, as DeepSeek-R1's
newer templates do), through the official `openai` and `ollama` clients.

qwen2.5-coder:0.5b was not trained to think: given an open block it writes its answer there and
never closes it. The reasoning budget makes the split deterministic: after N tokens of
reasoning the server writes `</think>` itself and the model answers after it.
"""
import json
import os

import httpx
import jsonschema
import ollama
import openai
import pytest

from conftest import MODEL_ID, REFERENCE_KERNELS, _extra_server, hf_dir, hf_model_id
from test_tools import WEATHER

TEMPLATE = os.path.join(os.path.dirname(__file__), "think.jinja")
STEPS = [{"role": "user", "content": "Explain step by step how to multiply 17 by 23."}]
CAPITAL = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def think_server():
    """The Qwen GGUF (llama.cpp) and the same model as a Hugging Face directory (MLX, loaded on
    its first request), both under the thinking template.

    On the reference's CPU variant (x86-64-v3): several tests rest on what this 0.5B model, which
    was never trained to think, happens to say greedily after a forced end of its reasoning. On
    the AVX-512 kernels (zen4) its greedy text parts early and no visible answer follows, so the
    Responses test saw no message item."""
    python = os.environ["MINERVA_PYTHON"]
    yield from _extra_server("think", ["--chat-template", TEMPLATE, "--model", hf_dir(), "--python", python],
                             env=REFERENCE_KERNELS)


@pytest.fixture(scope="module")
def tc(think_server):
    return openai.OpenAI(base_url=f"{think_server}/v1", api_key="not-needed", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def th(think_server):
    with httpx.Client(base_url=think_server, timeout=120) as c:
        yield c


def chat(client, messages=STEPS, budget=None, **kw):
    kw.setdefault("model", MODEL_ID)
    kw.setdefault("temperature", 0)
    kw.setdefault("max_tokens", 60)
    extra = kw.pop("extra_body", {})
    if budget is not None:
        extra["reasoning_budget"] = budget
    return client.chat.completions.create(messages=messages, extra_body=extra, **kw)


def reasoning(message):
    return getattr(message, "reasoning_content", None) or ""


def test_the_budget_closes_the_block_and_the_answer_follows(tc, th):
    r = chat(tc, budget=12)
    m = r.choices[0].message
    assert reasoning(m), m
    assert m.content and "</think>" not in m.content and "<think>" not in m.content, m
    # The block took the budget: twelve tokens (give or take the whitespace trimmed off its
    # ends), then the closing text the server wrote.
    tokens = th.post("/tokenize", json={"content": reasoning(m)}).json()["tokens"]
    assert 10 <= len(tokens) <= 12, tokens
    assert r.usage.completion_tokens == 60
    assert r.choices[0].finish_reason == "length"


def test_raw_text_with_reasoning_format_none(tc):
    split = chat(tc, budget=12).choices[0].message
    raw = chat(tc, budget=12, extra_body={"reasoning_format": "none"}).choices[0].message
    assert reasoning(raw) == ""
    # The prompt opened the block; the reply closes it where the budget ran out.
    before, sep, after = raw.content.partition("</think>")
    assert sep, raw.content
    assert before.strip() and after.strip()
    # Same reasoning length either way (the text may differ where a cached prompt rounds
    # differently; the token budget does not).
    assert abs(len(before.strip()) - len(reasoning(split))) < 40


def test_a_block_that_never_closes_is_all_reasoning(tc):
    r = chat(tc, max_tokens=8)
    m = r.choices[0].message
    assert reasoning(m)
    assert m.content == ""
    assert r.choices[0].finish_reason == "length"
    assert r.usage.completion_tokens == 8


def test_budget_zero_answers_at_once(tc):
    m = chat(tc, CAPITAL, budget=0).choices[0].message
    assert reasoning(m) == ""
    assert "Paris" in m.content


def test_effort_none_turns_thinking_off_in_the_template(tc):
    m = chat(tc, CAPITAL, reasoning_effort="none").choices[0].message
    assert reasoning(m) == ""
    assert "Paris" in m.content


def test_stream_equals_whole(tc):
    # Both compute the whole prompt (a cached prompt may round differently, see the README).
    nocache = {"cache_prompt": False}
    r = chat(tc, budget=6, max_tokens=30, extra_body=dict(nocache))
    whole = r.choices[0].message
    parts = {"reasoning": "", "content": ""}
    finish = None
    for chunk in chat(tc, budget=6, max_tokens=30, stream=True, extra_body=dict(nocache)):
        if not chunk.choices:
            continue
        d = chunk.choices[0].delta
        parts["reasoning"] += getattr(d, "reasoning_content", None) or ""
        parts["content"] += d.content or ""
        finish = chunk.choices[0].finish_reason or finish
    assert parts == {"reasoning": reasoning(whole), "content": whole.content}
    assert parts["reasoning"] and parts["content"]
    assert finish == r.choices[0].finish_reason


def test_schema_constrains_the_answer_not_the_reasoning(tc):
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    r = chat(tc, [{"role": "user", "content": "Explain who Ann, aged 31, is, then give her as JSON."}],
             budget=10, max_tokens=80,
             response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": schema}})
    m = r.choices[0].message
    assert r.choices[0].finish_reason == "stop"
    assert reasoning(m)
    jsonschema.validate(json.loads(m.content), schema)


def test_a_required_call_comes_after_the_reasoning(tc):
    r = chat(tc, [{"role": "user", "content": "What is the weather in Paris?"}], budget=8, max_tokens=80,
             tools=[WEATHER], tool_choice="required")
    m = r.choices[0].message
    assert reasoning(m)
    assert r.choices[0].finish_reason == "tool_calls"
    assert [c.function.name for c in m.tool_calls] == ["get_weather"]
    assert "city" in json.loads(m.tool_calls[0].function.arguments)


def test_a_constraint_still_comes_when_the_model_would_stop_while_thinking(tc):
    """Without a budget this model ends its reply inside the block. With a grammar still to
    come, the server closes the block instead, and the answer meets the grammar."""
    ask = [{"role": "user", "content": "What's the weather in Paris?"}]
    free = chat(tc, ask, max_tokens=80).choices[0]
    assert free.finish_reason == "stop" and free.message.content == "", free  # the premise
    for choice in ["required", {"type": "function", "function": {"name": "get_weather"}}]:
        r = chat(tc, ask, max_tokens=80, tools=[WEATHER], tool_choice=choice).choices[0]
        assert r.finish_reason == "tool_calls", r
        assert r.message.tool_calls[0].function.name == "get_weather"
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "temp_c": {"type": "integer"}},
              "required": ["city", "temp_c"]}
    r = chat(tc, ask, max_tokens=80,
             response_format={"type": "json_schema", "json_schema": {"name": "w", "schema": schema}}).choices[0]
    assert r.finish_reason == "stop", r
    jsonschema.validate(json.loads(r.message.content), schema)


def test_a_budget_spent_inside_the_closing_tag_finishes_it(tc):
    """This model writes `</think>` as `</`, `think`, `>` tokens: budgets that run out inside it
    end the block with the rest of the tag, not a second one."""
    ask = [{"role": "user", "content": "What is 2+3? Answer briefly."}]
    for budget in range(6, 13):
        m = chat(tc, ask, budget=budget).choices[0].message
        assert "</" not in reasoning(m), (budget, reasoning(m))
        raw = chat(tc, ask, budget=budget, extra_body={"reasoning_format": "none"}).choices[0].message.content
        assert raw.count("</think>") <= 1 and "</think\n" not in raw, (budget, raw)


def test_anthropic_thinking_blocks(think_server):
    import anthropic
    ac = anthropic.Anthropic(base_url=think_server, api_key="x", max_retries=0, timeout=120)
    m = ac.messages.create(model=MODEL_ID, max_tokens=60, messages=STEPS, extra_body={"temperature": 0},
                           thinking={"type": "enabled", "budget_tokens": 1024})
    # Without a budget reached, this model never closes the block: all thinking.
    assert [b.type for b in m.content] == ["thinking"], m.content
    m = ac.messages.create(model=MODEL_ID, max_tokens=60, messages=STEPS, extra_body={"temperature": 0},
                           thinking={"type": "enabled", "budget_tokens": 12})
    assert [b.type for b in m.content] == ["thinking", "text"], m.content
    assert m.content[0].thinking and m.content[1].text
    with ac.messages.stream(model=MODEL_ID, max_tokens=60, messages=STEPS, extra_body={"temperature": 0},
                            thinking={"type": "enabled", "budget_tokens": 12}) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text"]
    m = ac.messages.create(model=MODEL_ID, max_tokens=30, messages=CAPITAL, extra_body={"temperature": 0},
                           thinking={"type": "disabled"})
    assert [b.type for b in m.content] == ["text"] and "Paris" in m.content[0].text


def test_mlx_enforces_the_budget_too(think_server):
    """The MLX worker closes the block with a logits processor: the same split as llama.cpp."""
    slow = openai.OpenAI(base_url=f"{think_server}/v1", api_key="not-needed", max_retries=0, timeout=600)
    r = chat(slow, CAPITAL, budget=3, max_tokens=12, model=hf_model_id())
    m = r.choices[0].message
    assert reasoning(m), m
    assert m.content, m
    assert "</think>" not in m.content
    raw = chat(slow, CAPITAL, budget=0, max_tokens=8, model=hf_model_id(),
               extra_body={"reasoning_format": "none"}).choices[0].message
    assert raw.content.lstrip().startswith("</think>"), raw.content


def test_earlier_reasoning_is_rendered(th):
    """An assistant turn's reasoning_content reaches the template (which renders it)."""
    body = {"model": MODEL_ID, "max_tokens": 1, "temperature": 0, "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "A greeting; greet back."},
        {"role": "user", "content": "Bye"}]}
    with_reasoning = th.post("/v1/chat/completions", json=body).json()["usage"]["prompt_tokens"]
    del body["messages"][1]["reasoning_content"]
    without = th.post("/v1/chat/completions", json=body).json()["usage"]["prompt_tokens"]
    assert with_reasoning > without + 5


@pytest.mark.parametrize("field,value", [
    ("reasoning_effort", "max"),
    ("reasoning_effort", 3),
    ("reasoning_format", "deepseek-legacy"),
    ("reasoning_budget", -2),
    ("reasoning_budget", "8"),
    ("chat_template_kwargs", [1]),
])
def test_bad_values_are_400s(th, field, value):
    r = th.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": CAPITAL, field: value})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == field
    assert th.get("/health").status_code == 200


# --- Ollama ---

@pytest.fixture(scope="module")
def oc(think_server):
    return ollama.Client(host=think_server, timeout=120)


def test_ollama_capabilities(oc, server):
    assert "thinking" in oc.show(MODEL_ID).capabilities
    # The same model under its own template does not think.
    assert "thinking" not in ollama.Client(host=server, timeout=120).show(MODEL_ID).capabilities


def test_ollama_thinking_apart(oc):
    opts = {"temperature": 0, "num_predict": 60, "seed": 1}
    r = oc.chat(model=MODEL_ID, messages=STEPS, options=opts, think="low")
    assert r.message.thinking
    # Unset: the model's default, which for a thinking template is to think, shown apart.
    r = oc.chat(model=MODEL_ID, messages=CAPITAL, options=opts)
    assert "Paris" in r.message.thinking and r.message.content == ""
    # Streamed: thinking pieces then content pieces.
    thinking, content = "", ""
    for part in oc.chat(model=MODEL_ID, messages=CAPITAL, options=opts, stream=True):
        thinking += part.message.thinking or ""
        content += part.message.content or ""
    assert (thinking, content) == (r.message.thinking, r.message.content)


def test_ollama_think_false(oc):
    r = oc.chat(model=MODEL_ID, messages=CAPITAL, options={"temperature": 0, "num_predict": 30}, think=False)
    assert not r.message.thinking
    assert "Paris" in r.message.content
    g = oc.generate(model=MODEL_ID, prompt="What is the capital of France?", think=False,
                    options={"temperature": 0, "num_predict": 30})
    assert not g.thinking and "Paris" in g.response


def test_ollama_think_on_a_model_that_does_not(server):
    with pytest.raises(ollama.ResponseError) as e:
        ollama.Client(host=server, timeout=120).chat(model=MODEL_ID, messages=CAPITAL, think=True)
    assert e.value.status_code == 400
    assert "does not support thinking" in str(e.value)


def test_ollama_bad_think(th):
    r = th.post("/api/chat", json={"model": MODEL_ID, "messages": CAPITAL, "think": "max"})
    assert r.status_code == 400
    assert "think" in r.json()["error"]


def test_the_responses_api_returns_the_reasoning_as_an_item(tc):
    """`/v1/responses`: the reasoning block is a `reasoning` item (its text as `reasoning_text`
    content) before the message, streamed as `response.reasoning_text.delta`s."""
    kw = dict(model=MODEL_ID, input=STEPS[0]["content"], max_output_tokens=60, temperature=0,
              extra_body={"reasoning_budget": 20, "cache_prompt": False})
    r = tc.responses.create(**kw)
    kinds = [o.type for o in r.output]
    assert kinds[0] == "reasoning" and "message" in kinds, kinds
    thought = r.output[0].content[0].text
    assert thought and thought.strip() == thought
    assert 0 < r.usage.output_tokens_details.reasoning_tokens <= 21
    c = chat(tc, budget=20, extra_body={"cache_prompt": False})
    assert thought == reasoning(c.choices[0].message)
    assert r.output_text == c.choices[0].message.content
    pieces, final = [], None
    with tc.responses.stream(**kw) as stream:
        for e in stream:
            if e.type == "response.reasoning_text.delta":
                pieces.append(e.delta)
            if e.type in ("response.completed", "response.incomplete"):
                # The client's get_final_response() wants `response.completed`; a reply cut by
                # max_output_tokens ends with `response.incomplete`, as OpenAI's does.
                final = e.response
    assert final is not None and final.status == r.status
    assert "".join(pieces) == thought == final.output[0].content[0].text
