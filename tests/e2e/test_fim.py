"""Fill-in-the-middle on the real Qwen2.5-Coder model: llama-server's `/infill` layout, `suffix` on
`/v1/completions` (the `openai` client) and on Ollama's `/api/generate` (the `ollama` client),
compared with the reference llama-server (tests/fixtures/fim_qwen.json, recorded by
scripts/reference/record_fim_embed.py with one 4096-token slot)."""
import json
import os

import httpx
import ollama
import openai
import pytest

from conftest import MODEL_ID, REFERENCE_KERNELS, _extra_server, _required_env

FIXTURE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "fim_qwen.json")
with open(FIXTURE, encoding="utf-8") as f:
    CASES = json.load(f)["cases"]
N_PREDICT = 48


@pytest.fixture(scope="module")
def fim_server():
    """Qwen with a 4096-token window (as the reference's slot: /infill budgets the other files
    against it), and Gemma, whose vocabulary has no FIM tokens."""
    yield from _extra_server("fim", ["--ctx-size", "4096", "--model", _required_env("MINERVA_GEMMA_GGUF")],
                             env=REFERENCE_KERNELS)


@pytest.fixture(scope="module")
def fim_http(fim_server):
    with httpx.Client(base_url=fim_server, timeout=300) as c:
        yield c


@pytest.fixture(scope="module")
def gemma_id(fim_http):
    ids = [m["id"] for m in fim_http.get("/v1/models").json()["data"]]
    return next(i for i in ids if "gemma" in i)


def infill_body(case):
    body = {k: case[k] for k in ("input_prefix", "input_suffix", "input_extra", "prompt") if k in case}
    return {**body, "n_predict": N_PREDICT, "temperature": 0, "cache_prompt": False}


@pytest.mark.parametrize("case", CASES, ids=[c["input_prefix"][:16] for c in CASES])
def test_infill_equals_the_reference(fim_http, case):
    out = fim_http.post("/infill", json=infill_body(case)).json()
    ref = case["infill"]
    # The same layout: the same number of prompt tokens (repository name, files, prefix, suffix).
    assert out["tokens_evaluated"] == ref["tokens_evaluated"]
    assert out["content"] == ref["content"]
    assert out["stop"] is True and out["stop_type"] == ref["stop_type"]


def test_infill_streams_the_same_text(fim_http):
    case = CASES[3]
    whole = fim_http.post("/infill", json=infill_body(case)).json()["content"]
    pieces, last = [], None
    with fim_http.stream("POST", "/infill", json={**infill_body(case), "stream": True}) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                obj = json.loads(line[6:])
                pieces.append(obj["content"])
                last = obj
    assert "".join(pieces) == whole
    assert last["stop"] is True and last["tokens_predicted"] == N_PREDICT


@pytest.mark.parametrize("case", CASES, ids=[c["input_prefix"][:16] for c in CASES])
def test_suffix_on_completions_equals_the_reference(fim_server, case):
    client = openai.OpenAI(base_url=f"{fim_server}/v1", api_key="x", max_retries=0, timeout=300)
    out = client.completions.create(model=MODEL_ID, prompt=case["input_prefix"], suffix=case["input_suffix"],
                                    max_tokens=N_PREDICT, temperature=0, extra_body={"cache_prompt": False})
    ref = case["completion"]
    assert out.usage.prompt_tokens == ref["prompt_tokens"]
    assert out.choices[0].text == ref["text"]
    assert out.choices[0].finish_reason == ref["finish_reason"]


def test_ollama_suffix_gives_the_completions_text(fim_server):
    """Ollama's API has no `cache_prompt`: the model is unloaded before each case, so that the
    prompt is read cold as the reference read it. A prompt the cache still held from the tests
    above would be read up to its last token, in a batch of another size, which may flip a
    near-tie (see the README's prompt cache)."""
    client = ollama.Client(host=fim_server, timeout=300)
    for case in CASES[:3]:
        client.generate(model=MODEL_ID, keep_alive=0)
        out = client.generate(model=MODEL_ID, prompt=case["input_prefix"], suffix=case["input_suffix"],
                              options={"temperature": 0, "num_predict": N_PREDICT})
        assert out.response == case["completion"]["text"]
        assert out.prompt_eval_count == case["completion"]["prompt_tokens"]


def test_keystrokes_reuse_the_prefix_cache(fim_http):
    """An editor sends one request per keystroke: the prefix KV of the last one is reused, and
    only the changed tail and the suffix are computed again."""
    prefix = "".join(f"def function_{i}(x):\n    return x * {i}\n\n" for i in range(60))
    suffix = "".join(f"print(function_{i}(2))\n" for i in range(20))
    typed = "def next_function(value):\n    result = value + 1\n"
    evaluated, cached = [], []
    for cut in range(len(typed) - 12, len(typed) + 1, 4):
        out = fim_http.post("/infill", json={"input_prefix": prefix + typed[:cut], "input_suffix": suffix,
                                             "n_predict": 4, "temperature": 0}).json()
        evaluated.append(out["tokens_evaluated"])
        cached.append(out["timings"]["cache_n"])
    # From the second keystroke on, nearly all of the prefix comes from the cache.
    for n, c in zip(evaluated[1:], cached[1:]):
        assert c >= 0.6 * n, (evaluated, cached)


def test_a_model_without_fim_tokens_is_refused(fim_http, gemma_id):
    r = fim_http.post("/v1/completions", json={"model": gemma_id, "prompt": "a", "suffix": "b", "max_tokens": 4})
    assert r.status_code == 400
    err = r.json()["error"]
    assert "prefix" in err["message"] and "middle" in err["message"] and err["param"] == "suffix"
    r = fim_http.post("/infill", json={"model": gemma_id, "input_prefix": "a", "input_suffix": "b"})
    assert r.status_code == 400 and "does not support insert" in r.json()["error"]["message"]
    assert r.json()["error"]["param"] == "input_suffix"
    r = fim_http.post("/api/generate", json={"model": gemma_id, "prompt": "a", "suffix": "b", "stream": False})
    assert r.status_code == 400 and "does not support insert" in r.json()["error"]
    assert "insert" not in fim_http.post("/api/show", json={"model": gemma_id}).json()["capabilities"]
    assert fim_http.get("/health").status_code == 200


@pytest.mark.parametrize("body", [
    {},
    {"input_prefix": "a"},
    {"input_suffix": "b"},
    {"input_prefix": 1, "input_suffix": "b"},
    {"input_prefix": "a", "input_suffix": "b", "input_extra": "nope"},
    {"input_prefix": "a", "input_suffix": "b", "input_extra": [{"filename": "x"}]},
    {"input_prefix": "a", "input_suffix": "b", "temperature": -1},
    {"input_prefix": "a", "input_suffix": "b", "model": "no-such-model"},
])
def test_infill_bad_input(fim_http, body):
    r = fim_http.post("/infill", json=body)
    assert r.status_code in (400, 404), r.text
    assert "error" in r.json()


def test_suffix_with_token_prompt_or_raw_is_refused(fim_http):
    r = fim_http.post("/v1/completions", json={"model": MODEL_ID, "prompt": [1, 2], "suffix": "b"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    r = fim_http.post("/api/generate", json={"model": MODEL_ID, "prompt": "a", "suffix": "b", "raw": True})
    assert r.status_code == 400 and "raw" in r.json()["error"]


def test_infill_trims_large_files_to_fit(fim_http):
    """Prefix, suffix and other files each far over their budget: trimmed as documented, with
    room left for the reply (llama-server's own budget would overflow its context here)."""
    body = {"input_prefix": "x = 1\n" * 30000, "input_suffix": "y = 2\n" * 30000,
            "input_extra": [{"filename": "big.py", "text": "z = 3\n" * 50000}], "n_predict": 4, "temperature": 0}
    r = fim_http.post("/infill", json=body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["tokens_evaluated"] <= 4096 - 64 and out["tokens_predicted"] >= 1


def test_wrong_methods_and_shapes_answer_in_the_api_shape(fim_http):
    for method, path in [("GET", "/infill"), ("GET", "/v1/embeddings"), ("PUT", "/v1/completions")]:
        r = fim_http.request(method, path)
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed", (method, path)
    r = fim_http.get("/api/embed")
    assert r.status_code == 405 and isinstance(r.json()["error"], str)
    r = fim_http.post("/infill", json={"input_prefix": "a", "input_suffix": "b", "input_extra": [5]})
    assert r.status_code == 400 and "filename" in r.json()["error"]["message"]
    r = fim_http.post("/v1/embeddings", json={"model": MODEL_ID, "input": [1, "a"]})
    assert r.status_code == 400 and "untagged" not in r.json()["error"]["message"]


def test_insert_is_listed_before_the_model_is_loaded(fim_http):
    """The store reads the FIM tokens from the GGUF: `insert` does not depend on the model being
    loaded. (Unloads Qwen: the last test of this module.)"""
    r = fim_http.post("/api/generate", json={"model": MODEL_ID, "keep_alive": 0})
    assert r.status_code == 200
    for _ in range(100):
        state = next(m for m in fim_http.get("/v1/models").json()["data"] if m["id"] == MODEL_ID)["state"]
        if state == "unloaded":
            break
        import time
        time.sleep(0.1)
    assert state == "unloaded"
    assert "insert" in fim_http.post("/api/show", json={"model": MODEL_ID}).json()["capabilities"]
    listed = next(m for m in fim_http.get("/v1/models").json()["data"] if m["id"] == MODEL_ID)
    assert {"embedding", "insert"} <= set(listed["meta"]["capabilities"])
