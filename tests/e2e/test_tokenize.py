"""llama-server's /tokenize and /detokenize, same shapes and defaults."""
from conftest import MODEL_ID


def test_tokenize_defaults_and_roundtrip(http):
    text = "Hello world! 你好 🐍"
    tokens = http.post("/tokenize", json={"content": text}).json()["tokens"]
    assert all(isinstance(t, int) for t in tokens)
    assert http.post("/detokenize", json={"tokens": tokens}).json() == {"content": text}


def test_special_tokens_parsed_by_default(http):
    parsed = http.post("/tokenize", json={"content": "<|im_start|>"}).json()["tokens"]
    assert parsed == [151644]
    literal = http.post("/tokenize", json={"content": "<|im_start|>", "parse_special": False}).json()["tokens"]
    assert len(literal) > 1


def test_with_pieces(http):
    r = http.post("/tokenize", json={"content": "a🐍", "with_pieces": True, "model": MODEL_ID}).json()
    pieces = r["tokens"]
    assert all(set(p) == {"id", "piece"} for p in pieces)
    joined = b""
    for p in pieces:
        joined += p["piece"].encode() if isinstance(p["piece"], str) else bytes(p["piece"])
    assert joined.decode() == "a🐍"


def test_tokenize_errors(http):
    r = http.post("/tokenize", json={"content": 5})
    assert r.status_code == 400 and r.json()["error"]["param"] == "content"
    r = http.post("/tokenize", json={"content": "x", "model": "nope"})
    assert r.status_code == 404
    r = http.post("/detokenize", json={"tokens": [99999999]})
    assert r.status_code == 400 and "vocabulary" in r.json()["error"]["message"]
