"""Embeddings through the real clients (`openai`, `ollama`) on the real Qwen model, compared with
the reference llama-server (`--embeddings --pooling mean`, tests/fixtures/embeddings_qwen.json,
recorded by scripts/reference/record_fim_embed.py)."""
import base64
import json
import math
import os
import struct
from concurrent.futures import ThreadPoolExecutor

import httpx
import ollama
import pytest

from conftest import CTX_SIZE, MODEL_ID, hf_model_id

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "embeddings_qwen.json")
with open(FIXTURE, encoding="utf-8") as f:
    REFERENCE = json.load(f)["cases"]
TEXT_CASES = [c for c in REFERENCE if isinstance(c["input"], str)]
TOKEN_CASES = [c for c in REFERENCE if isinstance(c["input"], list)]


def cosine(a, b):
    assert len(a) == len(b)
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def norm(v):
    return math.sqrt(sum(x * x for x in v))


@pytest.fixture(scope="module")
def ollama_client(server):
    return ollama.Client(host=server, timeout=120)


def test_openai_batch_matches_the_reference(client):
    inputs = [c["input"] for c in TEXT_CASES]
    out = client.embeddings.create(model=MODEL_ID, input=inputs)
    assert [d.index for d in out.data] == list(range(len(inputs)))
    assert out.model == MODEL_ID
    assert out.usage.prompt_tokens == sum(c["n_tokens"] for c in TEXT_CASES)
    assert out.usage.total_tokens == out.usage.prompt_tokens
    for case, got in zip(TEXT_CASES, out.data):
        assert len(got.embedding) == 896
        assert abs(norm(got.embedding) - 1.0) < 1e-4
        assert cosine(got.embedding, case["embedding"]) >= 0.999, case["input"][:40]


def test_a_batch_equals_its_inputs_one_by_one(client):
    inputs = [c["input"] for c in TEXT_CASES]
    batch = client.embeddings.create(model=MODEL_ID, input=inputs).data
    for text, together in zip(inputs, batch):
        alone = client.embeddings.create(model=MODEL_ID, input=text).data[0]
        assert cosine(alone.embedding, together.embedding) >= 0.9999, text[:40]


def test_token_id_input_matches_the_reference(client):
    for case in TOKEN_CASES:
        out = client.embeddings.create(model=MODEL_ID, input=[case["input"]])
        assert out.usage.prompt_tokens == len(case["input"])
        assert cosine(out.data[0].embedding, case["embedding"]) >= 0.999
        # The same ids as a plain list (one input).
        one = client.embeddings.create(model=MODEL_ID, input=case["input"])
        assert cosine(one.data[0].embedding, out.data[0].embedding) >= 0.9999


def test_base64_decodes_to_the_float_vector(http):
    body = {"model": MODEL_ID, "input": ["hello world", "x"]}
    floats = http.post("/v1/embeddings", json=body).json()["data"]
    encoded = http.post("/v1/embeddings", json={**body, "encoding_format": "base64"}).json()["data"]
    for f, e in zip(floats, encoded):
        raw = base64.b64decode(e["embedding"])
        assert len(raw) == 4 * len(f["embedding"])
        decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
        assert list(decoded) == pytest.approx(f["embedding"], abs=1e-6)


def test_concurrent_requests_are_batched_and_each_gets_its_own(client):
    inputs = [c["input"] for c in TEXT_CASES] * 3
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda t: client.embeddings.create(model=MODEL_ID, input=t).data[0].embedding,
                                inputs))
    for text, got in zip(inputs, results):
        ref = next(c for c in TEXT_CASES if c["input"] == text)
        assert cosine(got, ref["embedding"]) >= 0.999


def test_ollama_embed_matches_the_reference(ollama_client):
    inputs = [c["input"] for c in TEXT_CASES]
    out = ollama_client.embed(model=MODEL_ID, input=inputs)
    assert len(out.embeddings) == len(inputs)
    assert out.prompt_eval_count == sum(c["n_tokens"] for c in TEXT_CASES)
    assert out.total_duration > 0
    for case, got in zip(TEXT_CASES, out.embeddings):
        assert abs(norm(got) - 1.0) < 1e-4
        assert cosine(got, case["embedding"]) >= 0.999
    one = ollama_client.embed(model=MODEL_ID, input=inputs[1])
    assert cosine(one.embeddings[0], out.embeddings[1]) >= 0.9999


def test_ollama_legacy_embeddings_is_the_unnormalised_vector(ollama_client):
    case = TEXT_CASES[1]
    out = ollama_client.embeddings(model=MODEL_ID, prompt=case["input"])
    assert len(out.embedding) == 896
    assert norm(out.embedding) > 2.0  # not unit length, as Ollama's older endpoint
    assert cosine(out.embedding, case["embedding"]) >= 0.999


def test_ollama_empty_input_only_loads(http):
    r = http.post("/api/embed", json={"model": MODEL_ID, "input": []})
    assert r.status_code == 200 and r.json()["embeddings"] == []
    r = http.post("/api/embeddings", json={"model": MODEL_ID, "prompt": ""})
    assert r.status_code == 200 and r.json()["embedding"] == []


LONG = "lorem ipsum dolor sit amet " * 600  # ~3000 tokens, over the 2048-token window


def test_truncation(http, ollama_client):
    # Ollama truncates by default, to the window.
    out = ollama_client.embed(model=MODEL_ID, input=LONG)
    assert out.prompt_eval_count == CTX_SIZE
    assert abs(norm(out.embeddings[0]) - 1.0) < 1e-4
    # truncate: false refuses it, in Ollama's shape.
    r = http.post("/api/embed", json={"model": MODEL_ID, "input": LONG, "truncate": False})
    assert r.status_code == 400 and "context length" in r.json()["error"]
    # OpenAI never truncates.
    r = http.post("/v1/embeddings", json={"model": MODEL_ID, "input": LONG})
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "context_length_exceeded" and err["param"] == "input"


@pytest.mark.parametrize("body, param", [
    ({"input": []}, "input"),
    ({"input": [""]}, "input"),
    ({"input": ""}, "input"),
    ({"input": [[]]}, "input"),
    ({"input": [151936]}, "input"),
    ({"input": [[1, 2], [-5]]}, "input"),
    ({"input": [1 << 40]}, "input"),
    ({"input": "hi", "encoding_format": "hex"}, "encoding_format"),
    ({"input": "hi", "dimensions": 256}, "dimensions"),
    ({"input": "hi", "dimensions": 0}, "dimensions"),
])
def test_openai_bad_input_is_a_400_in_openai_shape(http, body, param):
    r = http.post("/v1/embeddings", json={"model": MODEL_ID, **body})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["message"]
    assert http.get("/health").status_code == 200


def test_openai_malformed_bodies(http):
    for body in [{"model": MODEL_ID}, {"model": MODEL_ID, "input": {"a": 1}},
                 {"model": MODEL_ID, "input": [1, "a"]}, {"input": "hi"}]:
        r = http.post("/v1/embeddings", json=body)
        assert r.status_code == 400 and "error" in r.json(), body
    r = http.post("/v1/embeddings", json={"model": "no-such-model", "input": "hi"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_dimensions_equal_to_the_models_own_is_accepted(client):
    out = client.embeddings.create(model=MODEL_ID, input="hello world", dimensions=896)
    assert len(out.data[0].embedding) == 896


def test_ollama_bad_input(http):
    for body in [{"model": MODEL_ID, "input": ["ok", ""]}, {"model": MODEL_ID, "input": "hi", "dimensions": 3},
                 {"model": MODEL_ID, "input": 5}, {"input": "hi"}]:
        r = http.post("/api/embed", json=body)
        assert r.status_code == 400 and isinstance(r.json()["error"], str), body
    r = http.post("/api/embed", json={"model": "no-such-model", "input": "hi"})
    assert r.status_code == 404 and "error" in r.json()
    r = http.post("/api/embed", json={"model": MODEL_ID, "input": "hi", "options": {"temperature": "hot"}})
    assert r.status_code == 400 and "temperature" in r.json()["error"]


def test_listings_say_the_model_embeds(http):
    models = http.get("/v1/models").json()["data"]
    ours = next(m for m in models if m["id"] == MODEL_ID)
    assert "embedding" in ours["meta"]["capabilities"]
    assert ours["meta"]["embedding_dimensions"] == 896 and ours["meta"]["pooling"] == "mean"
    show = http.post("/api/show", json={"model": MODEL_ID}).json()
    assert {"completion", "embedding", "insert"} <= set(show["capabilities"])


def test_an_mlx_model_refuses_embeddings_clearly(both_http):
    r = both_http.post("/v1/embeddings", json={"model": hf_model_id(), "input": "hi"})
    assert r.status_code == 400, r.text
    assert "does not compute embeddings" in r.json()["error"]["message"]
    r = both_http.post("/api/embed", json={"model": hf_model_id(), "input": "hi"})
    assert r.status_code == 400 and "does not compute embeddings" in r.json()["error"]
    assert both_http.get("/health").status_code == 200
