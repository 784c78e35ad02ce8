"""Anthropic's Messages API end to end, with the official `anthropic` client and the real Qwen
model. Sampling arguments go through `extra_body`, as recent clients want."""
import json

import anthropic
import httpx
import jsonschema
import pytest

from conftest import MODEL_ID

GREEDY = {"temperature": 0}
WEATHER = {
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ASK = [{"role": "user", "content": "What is the weather in Paris? Use the get_weather tool."}]


@pytest.fixture(scope="module")
def ac(server):
    return anthropic.Anthropic(base_url=server, api_key="not-needed", max_retries=0, timeout=120)


def text_of(message):
    return "".join(b.text for b in message.content if b.type == "text")


def test_a_plain_reply(ac):
    m = ac.messages.create(model=MODEL_ID, max_tokens=30, extra_body=GREEDY,
                           system="Answer in one short sentence.",
                           messages=[{"role": "user", "content": "What is the capital of France?"}])
    assert m.type == "message" and m.role == "assistant" and m.model == MODEL_ID
    assert "Paris" in text_of(m)
    assert m.stop_reason in ("end_turn", "max_tokens")
    assert m.usage.input_tokens + m.usage.cache_read_input_tokens > 10 and 0 < m.usage.output_tokens <= 30
    assert m.id.startswith("msg_")


def test_streamed_equals_whole(ac):
    kw = dict(model=MODEL_ID, max_tokens=40, extra_body={**GREEDY, "cache_prompt": False},
              messages=[{"role": "user", "content": "Write a haiku about the sea."}])
    whole = ac.messages.create(**kw)
    kinds, pieces = [], []
    with ac.messages.stream(**kw) as stream:
        for event in stream:
            kinds.append(event.type)
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                pieces.append(event.delta.text)
        final = stream.get_final_message()
    assert "".join(pieces) == text_of(final) == text_of(whole)
    assert len(pieces) > 3
    assert final.stop_reason == whole.stop_reason
    assert final.usage.output_tokens == whole.usage.output_tokens
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert "content_block_start" in kinds and "content_block_stop" in kinds and "message_delta" in kinds


def test_raw_event_sequence(server):
    body = {"model": MODEL_ID, "max_tokens": 8, "stream": True, "temperature": 0,
            "messages": [{"role": "user", "content": "Say hi."}]}
    names = []
    with httpx.stream("POST", f"{server}/v1/messages", json=body, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("event: "):
                names.append(line[7:])
    assert names[:3] == ["message_start", "ping", "content_block_start"], names
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"], names
    assert set(names[3:-3]) == {"content_block_delta"}


def test_tool_use_round_trip(ac):
    m = ac.messages.create(model=MODEL_ID, max_tokens=80, extra_body=GREEDY, tools=[WEATHER],
                           tool_choice={"type": "any"}, messages=ASK)
    assert m.stop_reason == "tool_use"
    calls = [b for b in m.content if b.type == "tool_use"]
    assert len(calls) >= 1 and calls[0].name == "get_weather"
    assert isinstance(calls[0].input, dict) and "city" in calls[0].input
    assert calls[0].id.startswith("toolu_")
    follow = ASK + [{"role": "assistant", "content": [b.model_dump() for b in m.content]},
                    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": calls[0].id,
                                                  "content": json.dumps({"temperature_c": 21, "sky": "sunny"})}]}]
    final = ac.messages.create(model=MODEL_ID, max_tokens=60, extra_body=GREEDY, tools=[WEATHER],
                               tool_choice={"type": "none"}, messages=follow)
    assert final.stop_reason in ("end_turn", "max_tokens")
    assert text_of(final) and not [b for b in final.content if b.type == "tool_use"]


def test_streamed_tool_use(ac):
    with ac.messages.stream(model=MODEL_ID, max_tokens=80, extra_body=GREEDY, tools=[WEATHER],
                            tool_choice={"type": "tool", "name": "get_weather"}, messages=ASK) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    call = [b for b in final.content if b.type == "tool_use"][0]
    assert call.name == "get_weather" and "city" in call.input


def test_stop_sequences(ac):
    m = ac.messages.create(model=MODEL_ID, max_tokens=60, extra_body=GREEDY, stop_sequences=[", 5"],
                           messages=[{"role": "user", "content": "Count from 1 to 10, separated by commas."}])
    assert m.stop_reason == "stop_sequence", m
    assert m.stop_sequence == ", 5"
    assert "5" not in text_of(m).split(",")[-1]


def test_count_tokens_equals_the_prompt(ac):
    kw = dict(model=MODEL_ID, system="Be brief.", tools=[WEATHER], messages=ASK)
    counted = ac.messages.count_tokens(**kw).input_tokens
    m = ac.messages.create(max_tokens=1, extra_body=GREEDY, **kw)
    assert counted == m.usage.input_tokens + m.usage.cache_read_input_tokens


def test_output_format(server):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
              "required": ["city", "country"], "additionalProperties": False}
    r = httpx.post(f"{server}/v1/messages", timeout=120, json={
        "model": MODEL_ID, "max_tokens": 60, "temperature": 0,
        "messages": [{"role": "user", "content": "Name the capital of France and its country as JSON."}],
        "output_config": {"format": {"type": "json_schema", "schema": schema}}})
    assert r.status_code == 200, r.text
    message = r.json()
    assert message["stop_reason"] == "end_turn"
    jsonschema.validate(json.loads(message["content"][0]["text"]), schema)


@pytest.mark.parametrize("body,status,says", [
    ({"messages": [{"role": "user", "content": "hi"}]}, 400, "max_tokens"),
    ({"max_tokens": 5, "messages": [{"role": "system", "content": "hi"}]}, 400, "messages.0.role"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, 400, "image"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}, 400, "tool_use_id"),
    ({"max_tokens": 5, "messages": []}, 400, "at least one"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "bad name!"}]}, 400, "tools.0"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "tools": [{"name": "f"}]}, 400,
     "tools.0.input_schema"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
      "output_config": {"format": {"type": "json_schema"}}}, 400, "output_config.format.schema"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "tool_choice": {"type": "tool"}}, 400, "tool_choice"),
    ({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}, 400, "temperature"),
    ({"model": "no-such-model", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}, 404, "no-such-model"),
])
def test_bad_requests_in_anthropics_shape(server, body, status, says):
    r = httpx.post(f"{server}/v1/messages", json={"model": MODEL_ID, **body}, timeout=60,
                   headers={"anthropic-version": "2023-06-01", "x-api-key": "ignored"})
    assert r.status_code == status, r.text
    error = r.json()
    assert error["type"] == "error"
    assert error["error"]["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    assert says in error["error"]["message"], error
    assert httpx.get(f"{server}/health", timeout=10).status_code == 200


def test_unknown_paths_answer_in_anthropics_shape(server):
    r = httpx.post(f"{server}/v1/messages/batches", json={}, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
