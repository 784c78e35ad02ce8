"""End-to-end: structured output on the llama.cpp backend. JSON schemas (OpenAI `response_format`
json_schema, llama-server's `json_schema`, Ollama's `format`) and GBNF grammars (llama-server's
`grammar`) are enforced while sampling: every greedy reply that ends with `stop` validates against
its schema, checked with the `jsonschema` package and its FormatChecker. Unsupported keywords and
invalid grammars are a 400 naming them, and the server keeps serving after them.

Prompts are short and schemas bounded so that the whole file stays around two minutes on a CPU.
"""
import json

import httpx
import jsonschema
import ollama
import openai
import pytest

from conftest import MODEL_ID

MAX_TOKENS = 300
# The format checkers of draft 2020-12 (a bare FormatChecker() checks "time" as draft 3 did).
FORMATS = jsonschema.Draft202012Validator.FORMAT_CHECKER

SHORT = {"type": "string", "maxLength": 20}
ADDRESS = {"type": "object", "properties": {"street": {"type": "string", "maxLength": 30},
                                            "city": {"type": "string", "maxLength": 20}},
           "required": ["street", "city"], "additionalProperties": False}


def obj(props, required=None, **kw):
    return {"type": "object", "properties": props,
            "required": list(props) if required is None else required, **kw}


# (id, prompt, schema)
CASES = [
    ("person", "Describe a person.", obj({"name": SHORT, "age": {"type": "integer", "minimum": 0, "maximum": 120}},
                                         additionalProperties=False)),
    ("colour-enum", "What colour is the sky?", {"type": "string", "enum": ["red", "green", "blue"]}),
    ("boolean", "Is water wet?", obj({"answer": {"type": "boolean"}})),
    ("int-range", "Pick a two-digit number.", obj({"n": {"type": "integer", "minimum": 10, "maximum": 99}})),
    ("negative-range", "Give a cold temperature.",
     obj({"celsius": {"type": "integer", "minimum": -20, "maximum": -5}})),
    ("number-range", "Price of a book?", obj({"price": {"type": "number", "minimum": 0, "maximum": 1000}})),
    ("exclusive-number", "Give a probability.",
     obj({"p": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}})),
    ("string-array", "List some fruits.",
     obj({"fruits": {"type": "array", "items": {"type": "string", "maxLength": 15}, "minItems": 2, "maxItems": 4}})),
    ("int-triple", "Three small numbers.",
     obj({"xs": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9},
                 "minItems": 3, "maxItems": 3}})),
    ("nested", "Describe a user account.",
     obj({"user": obj({"name": SHORT, "email": {"type": "string", "format": "email"}}), "active": {"type": "boolean"}})),
    ("date", "When is Christmas 2024?", obj({"date": {"type": "string", "format": "date"}})),
    ("uuid", "Make up an id.", obj({"id": {"type": "string", "format": "uuid"}})),
    ("date-time", "When did the meeting start?", obj({"start": {"type": "string", "format": "date-time"}})),
    ("time", "What time is lunch?", obj({"at": {"type": "string", "format": "time"}})),
    ("ipv4", "A local IP address.", obj({"ip": {"type": "string", "format": "ipv4"}})),
    ("pattern-code", "A product code.", obj({"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"}})),
    ("pattern-phone", "A US phone number.",
     obj({"phone": {"type": "string", "pattern": "^\\(\\d{3}\\) \\d{3}-\\d{4}$"}})),
    ("any-of", "A value.", obj({"value": {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 10}]}})),
    ("one-of", "Describe a shape.",
     obj({"shape": {"oneOf": [
         obj({"kind": {"const": "circle"}, "radius": {"type": "number", "minimum": 0, "maximum": 100}}),
         obj({"kind": {"const": "square"}, "side": {"type": "integer", "minimum": 1, "maximum": 50}}),
     ]}})),
    ("defs-ref", "Home and work addresses.",
     {"$defs": {"address": ADDRESS}, **obj({"home": {"$ref": "#/$defs/address"}, "work": {"$ref": "#/$defs/address"}})}),
    ("recursive-tree", "A small family tree.",
     {"$ref": "#/$defs/node", "$defs": {"node": obj(
         {"name": {"type": "string", "maxLength": 10},
          "children": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
         required=["name"])}}),
    ("recursive-root", "A linked list of two numbers.",
     obj({"value": {"type": "integer", "minimum": 0, "maximum": 9},
          "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}})),
    ("optional-fields", "A movie.",
     obj({"title": SHORT, "subtitle": SHORT, "year": {"type": "integer", "minimum": 1900, "maximum": 2030}},
         required=["title"])),
    ("all-optional-closed", "A point.",
     obj({"x": {"type": "integer"}, "y": {"type": "integer"}}, required=[], additionalProperties=False)),
    ("mixed-enum", "A difficulty level.", obj({"level": {"enum": [1, 2, 3, "max"]}})),
    ("const", "Status report.", obj({"version": {"const": "1.0"}, "ok": {"type": "boolean"}})),
    ("nullable", "A nickname, if any.", obj({"nickname": {"type": ["string", "null"], "maxLength": 12}})),
    ("all-of", "A labelled item.",
     {"allOf": [obj({"id": {"type": "integer", "minimum": 1, "maximum": 1000}}), obj({"label": SHORT})]}),
    ("tuple", "A 2D point.",
     obj({"point": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}], "items": False}})),
    ("map", "Scores of three students.",
     {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 100}}),
    ("definitions", "An item.",
     {"definitions": {"item": obj({"sku": {"type": "string", "pattern": "^[a-z]{2}[0-9]{2}$"}})},
      "$ref": "#/definitions/item"}),
    ("array-of-objects", "A shopping list.",
     obj({"items": {"type": "array", "maxItems": 3, "items": obj({"name": SHORT, "qty": {
         "type": "integer", "minimum": 1, "maximum": 10}})}})),
    ("unbounded-int", "Population of a city.", obj({"population": {"type": "integer", "minimum": 1000}})),
    ("length-range", "A password.", obj({"password": {"type": "string", "minLength": 8, "maxLength": 12}})),
]


def check(schema, text):
    """The reply parses and validates, formats included."""
    value = json.loads(text)
    jsonschema.Draft202012Validator(schema, format_checker=FORMATS).validate(value)
    return value


def test_format_checkers_are_active():
    """Without `rfc3339-validator` jsonschema would not check date-time and time."""
    assert FORMATS.conforms("12:30:00Z", "time") and not FORMATS.conforms("12:30:00", "time")
    for name in ("date", "time", "date-time", "uuid", "email", "ipv4"):
        assert name in FORMATS.checkers, name
    assert not FORMATS.conforms("2024-02-30", "date")
    assert not FORMATS.conforms("10:00:00", "date-time")


@pytest.mark.parametrize("name,prompt,schema", CASES, ids=[c[0] for c in CASES])
def test_json_schema_replies_validate(client, name, prompt, schema):
    r = client.chat.completions.create(
        model=MODEL_ID,
        messages=[{"role": "user", "content": f"{prompt} Answer in JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": name.replace("-", "_"), "schema": schema,
                                                                "strict": True}},
        temperature=0,
        max_tokens=MAX_TOKENS,
    )
    choice = r.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    check(schema, choice.message.content)


def test_streamed_schema_reply_validates(client):
    _, prompt, schema = CASES[0]
    parts = list(client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": prompt}], stream=True, temperature=0,
        max_tokens=MAX_TOKENS, response_format={"type": "json_schema", "json_schema": {"name": "p", "schema": schema}}))
    assert parts[-1].choices[0].finish_reason == "stop"
    check(schema, "".join(p.choices[0].delta.content or "" for p in parts))


def test_json_object_with_schema(client):
    schema = CASES[3][2]
    r = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "Pick a number."}], temperature=0,
        max_tokens=MAX_TOKENS, response_format={"type": "json_object", "schema": schema})
    assert r.choices[0].finish_reason == "stop"
    check(schema, r.choices[0].message.content)


def test_ollama_format_schema(server):
    oc = ollama.Client(host=server, timeout=120)
    schema = CASES[0][2]
    r = oc.chat(model=MODEL_ID, messages=[{"role": "user", "content": "Describe a person."}], format=schema,
                options={"temperature": 0, "num_predict": MAX_TOKENS})
    assert r.done_reason == "stop"
    check(schema, r.message.content)
    schema = CASES[10][2]
    r = oc.generate(model=MODEL_ID, prompt="When is Christmas 2024?", format=schema,
                    options={"temperature": 0, "num_predict": MAX_TOKENS})
    assert r.done_reason == "stop"
    check(schema, r.response)


def test_llama_server_json_schema_and_grammar_fields(http):
    schema = CASES[15][2]
    for path, body in [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "A product code."}]}),
        ("/v1/completions", {"prompt": "A product code in JSON:"}),
    ]:
        r = http.post(path, json={"model": MODEL_ID, "temperature": 0, "max_tokens": MAX_TOKENS,
                                  "json_schema": schema, **body})
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        assert choice["finish_reason"] == "stop"
        check(schema, choice["message"]["content"] if "message" in choice else choice["text"])
    grammar = 'root ::= ("yes" | "no") ", because " [a-z ]{1,30} "."\n'
    for path, body in [
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Is the sea salty?"}]}),
        ("/v1/completions", {"prompt": "Q: Is the sea salty?\nA:"}),
    ]:
        r = http.post(path, json={"model": MODEL_ID, "temperature": 0, "max_tokens": 60, "grammar": grammar, **body})
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        assert choice["finish_reason"] == "stop", text
        assert text.split(",")[0] in ("yes", "no") and text.endswith("."), text


def bad(http, path, body):
    r = http.post(path, json={"model": MODEL_ID, "max_tokens": 5, **body})
    assert r.status_code == 400, r.text
    return r.json()["error"]


@pytest.mark.parametrize("schema,keyword", [
    (obj({"x": {"type": "object", "patternProperties": {"^a": {}}}}), "'patternProperties' at /properties/x"),
    ({"type": "array", "uniqueItems": True}, "uniqueItems"),
    (obj({"n": {"type": "integer", "multipleOf": 3}}), "multipleOf"),
    ({"not": {"type": "string"}}, "'not'"),
    (obj({"s": {"type": "string", "pattern": "^(?=a)b$"}}), "pattern"),
    (obj({"x": {"type": "number", "minimum": 0.5}}), "fractional"),
    (obj({"h": {"type": "string", "format": "hostname"}}), "hostname"),
    ({"$ref": "#/$defs/missing"}, "does not resolve"),
])
def test_unsupported_schemas_are_400_naming_the_keyword(client, http, schema, keyword):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL_ID, messages=[{"role": "user", "content": "hi"}], max_tokens=5,
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    error = info.value.body
    assert error["param"] == "response_format" and keyword in error["message"], error
    error = bad(http, "/v1/completions", {"prompt": "hi", "json_schema": schema})
    assert error["param"] == "json_schema" and keyword in error["message"], error
    r = http.post("/api/chat", json={"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}],
                                     "format": schema, "stream": False})
    assert r.status_code == 400 and keyword in r.json()["error"], r.text


@pytest.mark.parametrize("grammar,says", [
    ('root ::= "a', "syntax"),
    ("root ::= missing", "missing"),
    ('root ::= root "a" | "b"', "left-recursive"),
    ('root ::= "a"{5000}', "too large"),
    ('start ::= "a"', "root"),
    ('root ::= "a" \\q', "syntax"),
    # llama.cpp refuses a repeated group whose rules times the count pass 2000.
    ('root ::= ("a"{0,1000}){0,1000}', "2000"),
])
def test_invalid_grammars_are_400(http, grammar, says):
    for path, body in [("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}),
                       ("/v1/completions", {"prompt": "hi"})]:
        error = bad(http, path, {"grammar": grammar, **body})
        assert error["param"] == "grammar" and says in error["message"], error


def test_two_constraints_are_400(http):
    error = bad(http, "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"},
        "grammar": 'root ::= "a"'})
    assert error["param"] == "grammar"
    error = bad(http, "/v1/completions", {"prompt": "hi", "json_schema": {"type": "integer"}, "grammar": 'root ::= "1"'})
    assert "only one" in error["message"]


def test_repeated_groups_within_llama_cpps_limit(client, http):
    # Its regex compiles to one group of one rule, which llama.cpp takes 1000 times.
    ok = {"type": "object", "properties": {"id": {"type": "string", "pattern": "^(\\d{3}-){1,1000}$"}},
          "required": ["id"]}
    r = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "Give an id."}], temperature=0, max_tokens=40,
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": ok}})
    assert r.choices[0].finish_reason in ("stop", "length")
    too_many = {"type": "string", "pattern": "^((ab|cd){1,3}x){0,1000}$"}
    error = bad(http, "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": too_many}}})
    assert error["param"] == "response_format" and "2000" in error["message"], error


def test_a_body_nested_too_deep_says_so(http):
    schema = {"type": "string"}
    for _ in range(70):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    error = bad(http, "/v1/chat/completions", {
        "messages": [{"role": "user", "content": "hi"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
    assert "nests" in error["message"] and "128" in error["message"], error


def test_server_still_answers_after_bad_requests(client):
    r = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "Count to three."}], temperature=0, max_tokens=8)
    assert r.choices[0].message.content
