"""OpenAI's Responses API end to end, with the official `openai` client's `responses` and the
real Qwen model: the same request through `/v1/responses` and `/v1/chat/completions` gives the
same greedy text, streamed or whole; function calls round trip; JSON-schema output; bad input
answered in OpenAI's error shape."""
import json
import os

import httpx
import jsonschema
import openai
import pytest

import conftest
from conftest import MODEL_ID

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Get the current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
ASK = "What is the weather in Paris? Use the get_weather tool."


def test_a_plain_reply_equals_chat_completions(client):
    r = client.responses.create(model=MODEL_ID, instructions="Answer in one short sentence.",
                                input="What is the capital of France?", max_output_tokens=30,
                                temperature=0, extra_body={"cache_prompt": False})
    assert r.object == "response" and r.id.startswith("resp_") and r.status == "completed"
    assert r.model == MODEL_ID
    assert "Paris" in r.output_text
    c = client.chat.completions.create(model=MODEL_ID, max_tokens=30, temperature=0,
                                       extra_body={"cache_prompt": False}, messages=[
        {"role": "system", "content": "Answer in one short sentence."},
        {"role": "user", "content": "What is the capital of France?"}])
    assert r.output_text == c.choices[0].message.content
    assert r.usage.input_tokens == c.usage.prompt_tokens
    assert r.usage.output_tokens == c.usage.completion_tokens
    assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
    assert r.store is True, "kept by default, as OpenAI keeps them"


def test_streamed_equals_whole_and_events_are_in_order(client):
    kw = dict(model=MODEL_ID, input="Write a haiku about the sea.", max_output_tokens=40, temperature=0,
              extra_body={"cache_prompt": False})
    whole = client.responses.create(**kw)
    kinds, deltas, numbers = [], [], []
    with client.responses.stream(**kw) as stream:
        for event in stream:
            kinds.append(event.type)
            numbers.append(event.sequence_number)
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == whole.output_text
    assert len(deltas) > 3
    assert numbers == list(range(len(numbers)))
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done",
                          "response.incomplete" if whole.status == "incomplete" else "response.completed"]
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_max_output_tokens_makes_it_incomplete(client):
    r = client.responses.create(model=MODEL_ID, input="Count from 1 to 100.", max_output_tokens=5,
                                temperature=0)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == 5


def test_a_function_call_round_trip(client):
    r = client.responses.create(model=MODEL_ID, input=ASK, tools=[WEATHER_TOOL], tool_choice="required",
                                temperature=0, max_output_tokens=80)
    calls = [o for o in r.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments)["city"] == "Paris"
    assert calls[0].call_id.startswith("call_") and calls[0].id.startswith("fc_")
    follow = [{"role": "user", "content": ASK}, calls[0].model_dump(exclude_none=True),
              {"type": "function_call_output", "call_id": calls[0].call_id, "output": "18 degrees and sunny"}]
    final = client.responses.create(model=MODEL_ID, input=follow, tools=[WEATHER_TOOL], tool_choice="none",
                                    temperature=0, max_output_tokens=60)
    assert final.output_text and not [o for o in final.output if o.type == "function_call"]
    assert "18" in final.output_text or "sunny" in final.output_text.lower()


def test_a_streamed_function_call(client):
    with client.responses.stream(model=MODEL_ID, input=ASK, tools=[WEATHER_TOOL],
                                 tool_choice={"type": "function", "name": "get_weather"},
                                 temperature=0, max_output_tokens=80) as stream:
        args = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        final = stream.get_final_response()
    call = [o for o in final.output if o.type == "function_call"][0]
    assert call.arguments == args and json.loads(args)["city"] == "Paris"


def test_json_schema_output(client):
    schema = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
              "required": ["name", "age"], "additionalProperties": False}
    r = client.responses.create(model=MODEL_ID, input="Invent a person.", max_output_tokens=60,
                                text={"format": {"type": "json_schema", "name": "person", "schema": schema,
                                                 "strict": True}})
    jsonschema.validate(json.loads(r.output_text), schema)
    assert r.text.format.type == "json_schema"


BAD = [
    ({"model": MODEL_ID}, "input"),
    ({"model": MODEL_ID, "input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"model": MODEL_ID, "input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "data URI"),
    ({"model": MODEL_ID, "input": "hi", "tools": [{"type": "web_search"}]}, "hosted tools"),
    ({"model": MODEL_ID, "input": "hi", "max_output_tokens": 0}, "max_output_tokens"),
    ({"model": MODEL_ID, "input": "hi", "previous_response_id": "resp_x"}, "previous_response_id"),
    ({"model": MODEL_ID, "input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}}, "schema"),
    ({"model": MODEL_ID, "input": "hi", "temperature": "hot"}, "temperature"),
    ({"model": "no-such-model", "input": "hi"}, "no-such-model"),
]


@pytest.mark.parametrize("body,says", BAD)
def test_bad_requests_in_openais_shape(server, body, says):
    r = httpx.post(f"{server}/v1/responses", json=body, timeout=60)
    assert r.status_code in (400, 404), r.text
    error = r.json()["error"]
    assert says in error["message"] or says == error.get("param"), error
    assert httpx.get(f"{server}/health").status_code == 200


def test_a_stored_response_is_retrieved_continued_and_deleted(client, server):
    first = client.responses.create(model=MODEL_ID, input="My name is Ada. Say hello to me.",
                                    max_output_tokens=20, temperature=0)
    assert first.store is True
    got = client.responses.retrieve(first.id)
    assert got.id == first.id and got.output_text == first.output_text and got.status == first.status
    # The conversation goes on from the stored one: the earlier turns come first.
    second = client.responses.create(model=MODEL_ID, previous_response_id=first.id,
                                     input="What is my name?", max_output_tokens=20, temperature=0)
    assert "Ada" in second.output_text
    assert second.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    alone = client.responses.create(model=MODEL_ID, input="What is my name?", max_output_tokens=20,
                                    temperature=0, store=False)
    assert "Ada" not in alone.output_text
    assert alone.store is False
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(alone.id)
    r = httpx.delete(f"{server}/v1/responses/{first.id}")
    assert r.status_code == 200 and r.json() == {"id": first.id, "object": "response", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    assert httpx.delete(f"{server}/v1/responses/{first.id}").status_code == 404
    with pytest.raises(openai.BadRequestError) as info:
        client.responses.create(model=MODEL_ID, previous_response_id=first.id, input="Hi")
    assert "not found" in str(info.value)
    # A function call round trip through previous_response_id: the call is in the stored turn.
    call = client.responses.create(model=MODEL_ID, input=ASK, tools=[WEATHER_TOOL], tool_choice="required",
                                   temperature=0, max_output_tokens=80)
    fc = [o for o in call.output if o.type == "function_call"][0]
    final = client.responses.create(model=MODEL_ID, previous_response_id=call.id, tools=[WEATHER_TOOL],
                                    tool_choice="none", temperature=0, max_output_tokens=60,
                                    input=[{"type": "function_call_output", "call_id": fc.call_id,
                                            "output": "18 degrees and sunny"}])
    assert "18" in final.output_text or "sunny" in final.output_text.lower()


def test_stored_responses_survive_a_restart(tmp_path):
    db = str(tmp_path / "conversations.db")
    log = os.path.join(conftest.LOG_DIR, "minerva-e2e-responses-{port}.log")
    proc, base, handle = conftest._start_server(["--ui-db", db], log)
    try:
        c = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=120)
        first = c.responses.create(model=MODEL_ID, input="My name is Ada. Say hello to me.",
                                   max_output_tokens=20, temperature=0)
    finally:
        conftest._stop_server(proc, handle)
    proc, base, handle = conftest._start_server(["--ui-db", db], log)
    try:
        c = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=120)
        assert c.responses.retrieve(first.id).output_text == first.output_text
        second = c.responses.create(model=MODEL_ID, previous_response_id=first.id, input="What is my name?",
                                    max_output_tokens=20, temperature=0)
        assert "Ada" in second.output_text
    finally:
        conftest._stop_server(proc, handle)


def test_a_server_that_keeps_no_responses(tmp_path):
    log = os.path.join(conftest.LOG_DIR, "minerva-e2e-nokeep-{port}.log")
    proc, base, handle = conftest._start_server(["--keep-responses-days", "0"], log)
    try:
        c = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=120)
        r = c.responses.create(model=MODEL_ID, input="Hi", max_output_tokens=5)
        assert r.store is False
        with pytest.raises(openai.NotFoundError):
            c.responses.retrieve(r.id)
        with pytest.raises(openai.BadRequestError) as info:
            c.responses.create(model=MODEL_ID, previous_response_id=r.id, input="Hi")
        assert "keeps no responses" in str(info.value)
    finally:
        conftest._stop_server(proc, handle)
