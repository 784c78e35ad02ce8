"""Bad input gets an OpenAI-shaped error with the right status, and the server keeps serving.

Every case that names the model runs on both backends (the `model` fixture: the Qwen GGUF on
llama.cpp and its Hugging Face conversion on MLX, one server); cases whose body names no model,
or a model that is not served, run once.
"""
import pytest

from conftest import BACKENDS, CTX_SIZE, MODEL_ID

GOOD_CHAT = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, "temperature": 0}


@pytest.fixture(scope="module")
def http(both_http):
    return both_http


def for_model(body, model):
    """`body` (written for MODEL_ID) for `model`; raw bytes and other models' bodies as they are."""
    if isinstance(body, dict) and body.get("model") == MODEL_ID:
        return {**body, "model": model.id}
    return body


def names_the_model(body):
    return isinstance(body, dict) and body.get("model") == MODEL_ID


def per_backend(cases):
    """(case..., backend) for each backend when the case names the served model, else llama.cpp only."""
    out = []
    for case in cases:
        for backend in BACKENDS if names_the_model(case[1]) else BACKENDS[:1]:
            out.append(pytest.param(*case, backend, id=f"{case[0]}-{backend}"))
    return out


def assert_error(r, status, param=None, code=None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert isinstance(err["message"], str) and err["message"]
    assert err["type"] in ("invalid_request_error", "server_error")
    if param is not None:
        assert err["param"] == param, err
    if code is not None:
        assert err["code"] == code, err
    return err


def still_serving(http, model):
    """The model still generates. On MLX (a second or more per token on a CPU, prompt tokens
    too), one token from a one-token prompt."""
    if model.mlx:
        r = http.post("/v1/completions", json={"model": model.id, "prompt": "a", "max_tokens": 1, "temperature": 0})
        assert r.status_code == 200, r.text
        assert r.json()["usage"]["completion_tokens"] == 1
        return
    r = http.post("/v1/chat/completions", json=for_model(GOOD_CHAT, model))
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] is not None


CHAT_CASES = [
    ("malformed json", b'{"model": "x", "messages": [', 400, None, None),
    ("not an object", b'[1, 2, 3]', 400, None, "invalid_type"),
    ("string body", b'"hello"', 400, None, "invalid_type"),
    ("empty body", b"", 400, None, None),
    ("missing messages", {"model": MODEL_ID}, 400, None, None),
    ("missing model", {"messages": [{"role": "user", "content": "x"}]}, 400, None, None),
    ("messages not a list", {"model": MODEL_ID, "messages": "hi"}, 400, "messages", "invalid_type"),
    ("empty messages", {"model": MODEL_ID, "messages": []}, 400, "messages", None),
    ("message not an object", {"model": MODEL_ID, "messages": ["hi"]}, 400, "messages[0]", None),
    ("message without role", {"model": MODEL_ID, "messages": [{"content": "hi"}]}, 400, "messages[0].role", None),
    ("unknown role", {"model": MODEL_ID, "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0].role", None),
    ("user without content", {"model": MODEL_ID, "messages": [{"role": "user"}]}, 400, "messages[0].content", None),
    ("content wrong type", {"model": MODEL_ID, "messages": [{"role": "user", "content": 5}]}, 400, "messages[0].content", None),
    ("temperature wrong type", {**GOOD_CHAT, "temperature": "hot"}, 400, "temperature", "invalid_type"),
    ("temperature out of range", {**GOOD_CHAT, "temperature": 5}, 400, "temperature", None),
    ("top_p out of range", {**GOOD_CHAT, "top_p": 1.5}, 400, "top_p", None),
    ("negative top_k", {**GOOD_CHAT, "top_k": -3}, 400, "top_k", None),
    ("max_tokens zero", {**GOOD_CHAT, "max_tokens": 0}, 400, "max_tokens", None),
    ("max_tokens wrong type", {**GOOD_CHAT, "max_tokens": "many"}, 400, "max_tokens", "invalid_type"),
    ("top_logprobs too many", {**GOOD_CHAT, "logprobs": True, "top_logprobs": 50}, 400, "top_logprobs", None),
    ("n above the maximum", {**GOOD_CHAT, "n": 17}, 400, "n", None),
    ("negative seed", {**GOOD_CHAT, "seed": -1}, 400, "seed", None),
    ("logit_bias bad key", {**GOOD_CHAT, "logit_bias": {"abc": 1}}, 400, "logit_bias", None),
    ("logit_bias token outside vocab", {**GOOD_CHAT, "logit_bias": {"99999999": 1}}, 400, "logit_bias", None),
    ("stop wrong type", {**GOOD_CHAT, "stop": 7}, 400, "stop", None),
    ("unknown model", {**GOOD_CHAT, "model": "no-such-model"}, 404, None, "model_not_found"),
    ("path trick model", {**GOOD_CHAT, "model": "../../etc/passwd"}, 400, "model", None),
    ("absolute path model", {**GOOD_CHAT, "model": "/etc/passwd"}, 400, "model", None),
]


@pytest.mark.parametrize("name,body,status,param,code,model", per_backend(CHAT_CASES), indirect=["model"])
def test_chat_errors(http, name, body, status, param, code, model):
    body = for_model(body, model)
    if isinstance(body, bytes):
        r = http.post("/v1/chat/completions", content=body, headers={"content-type": "application/json"})
    else:
        r = http.post("/v1/chat/completions", json=body)
    assert_error(r, status, param, code)
    still_serving(http, model)


COMPLETION_CASES = [
    ("token id outside vocab", {"model": MODEL_ID, "prompt": [1, 2, 99999999], "max_tokens": 2}, 400, "prompt"),
    ("negative token id", {"model": MODEL_ID, "prompt": [-5], "max_tokens": 2}, 400, "prompt"),
    ("empty token prompt", {"model": MODEL_ID, "prompt": [], "max_tokens": 2}, 400, "prompt"),
    ("prompt wrong type", {"model": MODEL_ID, "prompt": {"a": 1}, "max_tokens": 2}, 400, "prompt"),
    ("batched prompts", {"model": MODEL_ID, "prompt": ["a", "b"], "max_tokens": 2}, 400, "prompt"),
    ("logprobs out of range", {"model": MODEL_ID, "prompt": "a", "logprobs": 99}, 400, "logprobs"),
    ("unknown model", {"model": "nope", "prompt": "a"}, 404, None),
]


@pytest.mark.parametrize("name,body,status,param,model", per_backend(COMPLETION_CASES), indirect=["model"])
def test_completion_errors(http, name, body, status, param, model):
    assert_error(http.post("/v1/completions", json=for_model(body, model)), status, param)
    still_serving(http, model)


def test_prompt_longer_than_context_is_rejected_before_decoding(http, model):
    long_text = "hello " * (CTX_SIZE + 100)
    err = assert_error(
        http.post("/v1/completions", json={"model": model.id, "prompt": long_text, "max_tokens": 1}),
        400,
        code="context_length_exceeded",
    )
    assert str(CTX_SIZE) in err["message"]
    chat = {"model": model.id, "messages": [{"role": "user", "content": long_text}], "max_tokens": 1}
    assert_error(http.post("/v1/chat/completions", json=chat), 400, code="context_length_exceeded")
    still_serving(http, model)


@pytest.mark.parametrize("model", ["llama.cpp"], indirect=True)
def test_generation_stops_at_end_of_context(http, model):
    """llama.cpp only: MLX on a CPU reads a prompt at a few tokens a second, and this one is
    2,036 tokens (about ten minutes)."""
    # A prompt that leaves 12 tokens of room: the reply ends with `length` at the context's end.
    tokens = http.post("/tokenize", json={"model": MODEL_ID, "content": "one two " * 2000}).json()["tokens"][: CTX_SIZE - 12]
    r = http.post("/v1/completions", json={"model": MODEL_ID, "prompt": tokens, "max_tokens": 100, "temperature": 0})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] <= 12
    assert body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"] <= CTX_SIZE


def test_unknown_route_is_json_404(http):
    assert_error(http.get("/v1/nothing-here"), 404)


def test_streaming_error_before_first_token_is_plain_http_error(http, model):
    body = {**for_model(GOOD_CHAT, model), "stream": True, "temperature": 9}
    assert_error(http.post("/v1/chat/completions", json=body), 400, "temperature")
    still_serving(http, model)
