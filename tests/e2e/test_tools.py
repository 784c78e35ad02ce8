"""Tool calling end to end: the real Qwen model, the official `openai` and `ollama` clients.

qwen2.5-coder:0.5b's template is Hermes-style (`<tool_call>`), and at temperature 0 the model
often writes the bare `{"name": ..., "arguments": ...}` object instead: both must come back as
`tool_calls`.
"""
import json

import httpx
import ollama
import pytest

from conftest import MODEL_ID

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city's name"}},
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Get the current time in a time zone",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "CET", "EST"]}},
            "required": ["zone"],
        },
    },
}
ASK = [{"role": "user", "content": "What is the weather in Paris? Use the get_weather tool."}]
# For the turn after a tool result. qwen2.5-coder:0.5b given the tools again calls the same tool
# again whatever the result says (measured: 6 of 6 phrasings), so the final turn is asked with
# `tool_choice: "none"` (Ollama: without tools) and a system prompt, as an agent does to get the
# answer out of a small model.
SYSTEM = {"role": "system", "content": "You are a helpful assistant. Call a tool only when you need data you "
          "do not have yet; once a tool has answered, reply to the user in one sentence."}
RESULT = json.dumps({"temperature_c": 21, "sky": "sunny"})


def chat(client, **kw):
    kw.setdefault("model", MODEL_ID)
    kw.setdefault("temperature", 0)
    kw.setdefault("max_tokens", 80)
    return client.chat.completions.create(**kw)


def only_call(choice):
    calls = choice.message.tool_calls
    assert calls, f"no tool call: {choice.message.content!r}"
    assert len(calls) == 1, calls
    call = calls[0]
    assert call.type == "function"
    assert call.id.startswith("call_")
    return call.function.name, json.loads(call.function.arguments)


def test_weather_round_trip(client):
    r = chat(client, messages=ASK, tools=[WEATHER])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    name, args = only_call(choice)
    assert name == "get_weather"
    assert args["city"].lower() == "paris"
    assert not choice.message.content
    call = choice.message.tool_calls[0]
    messages = [SYSTEM] + ASK + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": RESULT},
    ]
    final = chat(client, messages=messages, tools=[WEATHER], tool_choice="none", max_tokens=60)
    answer = final.choices[0]
    assert answer.message.tool_calls is None
    assert answer.message.content and "21" in answer.message.content, answer.message.content
    assert answer.finish_reason in ("stop", "length")


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_time"}}])
def test_constrained_choices_always_call(client, choice):
    # A question no tool answers: the grammar still makes the reply one valid call (a named
    # function is called once; `required` once here, with parallel calls off).
    r = chat(client, messages=[{"role": "user", "content": "Write a haiku about the sea."}],
             tools=[WEATHER, TIME], tool_choice=choice, parallel_tool_calls=False)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls"
    name, args = only_call(c)
    if isinstance(choice, dict):
        assert name == "get_time"
    if name == "get_time":
        assert args["zone"] in ("UTC", "CET", "EST")
    else:
        assert name == "get_weather" and isinstance(args["city"], str)


def test_a_named_function_is_called_once(client):
    r = chat(client, messages=[{"role": "user", "content": "What time is it in UTC, CET and EST?"}],
             tools=[WEATHER, TIME], tool_choice={"type": "function", "function": {"name": "get_time"}})
    assert r.choices[0].finish_reason == "tool_calls"
    assert only_call(r.choices[0])[0] == "get_time"


# Replies compared token for token are computed without the prompt cache: a cached prefix is
# computed in another batch size, which can flip a near-tie (see the README's prompt cache).
COLD = {"extra_body": {"cache_prompt": False}}


def test_tool_choice_none_hides_the_tools(client):
    with_tools = chat(client, messages=ASK, tools=[WEATHER], tool_choice="none", **COLD)
    without = chat(client, messages=ASK, **COLD)
    c = with_tools.choices[0]
    assert c.message.tool_calls is None
    assert c.finish_reason in ("stop", "length")
    assert with_tools.usage.prompt_tokens == without.usage.prompt_tokens
    assert c.message.content == without.choices[0].message.content


def test_no_tool_needed_gives_plain_content(client):
    r = chat(client, messages=[{"role": "user", "content": "Say hello in French. Reply with one word."}],
             tools=[WEATHER])
    c = r.choices[0]
    assert c.message.tool_calls is None
    assert c.finish_reason == "stop"
    assert c.message.content.strip()


def test_stream_reassembles_to_the_whole_reply(client):
    for kw in ({"tools": [WEATHER]}, {"tools": [WEATHER, TIME], "tool_choice": "required"}):
        whole = chat(client, messages=ASK, seed=7, **COLD, **kw).choices[0]
        calls = {}
        pieces = {}
        content = ""
        finish = None
        for chunk in chat(client, messages=ASK, seed=7, stream=True, **COLD, **kw):
            if not chunk.choices:
                continue
            delta = chunk.choices[0].delta
            content += delta.content or ""
            for tc in delta.tool_calls or []:
                if tc.id is not None:
                    assert tc.index not in calls, "id and name come once per call"
                    assert tc.function.name and tc.type == "function"
                    calls[tc.index] = [tc.function.name, tc.function.arguments or ""]
                    pieces[tc.index] = 0
                else:
                    assert tc.function.name is None
                    calls[tc.index][1] += tc.function.arguments
                    pieces[tc.index] += 1
            finish = chunk.choices[0].finish_reason or finish
        assert finish == whole.finish_reason == "tool_calls"
        assert content == (whole.message.content or "")
        assert [calls[i] for i in sorted(calls)] == [
            [t.function.name, t.function.arguments] for t in whole.message.tool_calls
        ]
        assert all(n >= 2 for n in pieces.values()), f"arguments came in one lump: {pieces}"


def test_several_choices_each_call(client):
    r = chat(client, messages=ASK, tools=[WEATHER], tool_choice="required", n=2, temperature=0.7, seed=3)
    assert [c.index for c in r.choices] == [0, 1]
    for c in r.choices:
        assert c.finish_reason == "tool_calls"
        assert c.message.tool_calls[0].function.name == "get_weather"
        json.loads(c.message.tool_calls[0].function.arguments)


def test_parallel_calls_off_means_one_call(client):
    msgs = [{"role": "user", "content": "What is the weather in Paris and in London?"}]
    r = chat(client, messages=msgs, tools=[WEATHER], tool_choice="required", parallel_tool_calls=False)
    assert len(r.choices[0].message.tool_calls) == 1


def test_two_calls_in_one_turn(client):
    msgs = [{"role": "user", "content": "What is the weather in Paris and in London?"}]
    r = chat(client, messages=msgs, tools=[WEATHER], tool_choice="required", max_tokens=120)
    calls = r.choices[0].message.tool_calls
    cities = [json.loads(c.function.arguments)["city"].lower() for c in calls]
    assert len(calls) == 2, cities
    assert set(cities) == {"paris", "london"}
    assert len({c.id for c in calls}) == 2


@pytest.mark.parametrize("body, param", [
    ({"tools": {"a": 1}}, "tools"),
    ({"tools": [{"type": "function", "function": {"name": "bad name"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "function"}]}, "tools[0].function"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}]}, "tools[0].function.parameters"),
    ({"tools": [WEATHER, WEATHER]}, "tools[1].function.name"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER], "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"tools": [{"type": "function", "function": {"name": "f", "strict": True,
                 "parameters": {"type": "object", "patternProperties": {"^x": {}}}}}],
      "tool_choice": "required"}, "tools[0].function.parameters"),
])
def test_bad_tool_requests_are_400s(http, body, param):
    r = http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": ASK, "max_tokens": 4, **body})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error"
    assert err["param"] == param, err
    ok = http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": ASK, "max_tokens": 2})
    assert ok.status_code == 200


def test_ollama_tools_round_trip(server):
    c = ollama.Client(host=server)
    r = c.chat(model=MODEL_ID, messages=ASK, tools=[WEATHER], options={"temperature": 0, "num_predict": 80})
    calls = r.message.tool_calls
    assert calls and calls[0].function.name == "get_weather"
    assert calls[0].function.arguments["city"].lower() == "paris"
    assert r.done_reason == "stop"
    messages = [SYSTEM] + ASK + [
        {"role": "assistant", "content": "", "tool_calls": [calls[0].model_dump()]},
        {"role": "tool", "tool_name": "get_weather", "content": RESULT},
    ]
    final = c.chat(model=MODEL_ID, messages=messages, options={"temperature": 0, "num_predict": 60})
    assert not final.message.tool_calls
    assert "21" in final.message.content
    # Streamed: the call arrives whole in one object, never as content.
    parts = list(c.chat(model=MODEL_ID, messages=ASK, tools=[WEATHER], stream=True,
                        options={"temperature": 0, "num_predict": 80}))
    streamed = [tc for p in parts for tc in (p.message.tool_calls or [])]
    assert [t.function.name for t in streamed] == ["get_weather"]
    assert streamed[0].function.arguments["city"].lower() == "paris"
    assert "".join(p.message.content for p in parts) == r.message.content == ""
    assert parts[-1].done


def test_ollama_capabilities_and_bad_tools(server):
    c = ollama.Client(host=server)
    assert "tools" in c.show(MODEL_ID).capabilities
    r = httpx.post(f"{server}/api/chat", json={"model": MODEL_ID, "messages": ASK, "tools": [{"type": "function"}],
                                                "stream": False}, timeout=60)
    assert r.status_code == 400
    assert "tools[0].function" in r.json()["error"]


def test_mlx_refuses_constrained_tool_choice(both_http, both_server):
    from conftest import hf_model_id
    r = both_http.post("/v1/chat/completions", json={
        "model": hf_model_id(), "messages": ASK, "tools": [WEATHER], "tool_choice": "required", "max_tokens": 4})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "tool_choice"


@pytest.mark.parametrize("calls,param", [
    ([5], "messages[1].tool_calls[0].function"),
    ([{}], "messages[1].tool_calls[0].function"),
    ([{"function": "x"}], "messages[1].tool_calls[0].function"),
    ([{"type": "function", "function": {"name": 5, "arguments": "{}"}}], "messages[1].tool_calls[0].function.name"),
    ([{"type": "function", "function": {"name": "f"}}], "messages[1].tool_calls[0].function.arguments"),
    ("x", "messages[1].tool_calls"),
])
def test_malformed_earlier_calls_are_400s(http, calls, param):
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": calls},
                {"role": "user", "content": "and?"}]
    r = http.post("/v1/chat/completions", json={"model": MODEL_ID, "messages": messages, "max_tokens": 2})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    r = http.post("/api/chat", json={"model": MODEL_ID, "messages": messages, "stream": False,
                                     "options": {"num_predict": 2}})
    if calls == [{"type": "function", "function": {"name": "f"}}]:
        assert r.status_code == 200, r.text  # Ollama takes missing arguments as {}
    else:
        assert r.status_code == 400, r.text
        assert "tool_calls" in r.json()["error"]
