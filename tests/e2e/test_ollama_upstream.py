"""Ollama's own HTTP-level tests, ported: the cases of its route tests (server/routes_*_test.go)
and its integration tests (integration/*_test.go) that apply to Minerva, rewritten here against the
real `minerva serve` and the real Qwen model, through the official `ollama` client (httpx where
the client cannot say it: a raw body, a field it does not type).

Each test names the upstream case it ports ("upstream: FILE Test/subtest"). The upstream inputs
and the properties they check are kept; where Ollama's route tests read the prompt a mock runner
was given, the port compares prompt token counts against the same prompt spelled out on the base
model (the rendered prompt is not visible over HTTP). tests/e2e/ollama_upstream.md lists every
upstream case, the ones ported, and why the others are not.

Servers: the session `server` (Qwen by --model) for what does not change a library; `lib`, a
library of its own (qwen:test, gemma:test, cloned from test_library's store) for created models;
`bare`, an empty library for the listings of nothing and for models made of an uploaded blob;
and one more empty library for the blob accounting of delete.
"""
import json
import math
import os
import struct
import time

import httpx
import ollama
import pytest

import conftest
from conftest import MODEL_ID
from test_library import GEMMA, QWEN, client, serve, store  # noqa: F401 (store is a fixture)

GREEDY = {"temperature": 0, "seed": 123}
# integration/utils_test.go: the prompts and the words one of which a right answer contains.
BLUE_SKY = "why is the sky blue? Be brief but factual in your reply"
RAINBOW = "how do rainbows form? Be brief but factual in your reply"
RAINBOW_FOLLOWUP = "Explain the physics involved in them.  Be brief in your reply"
RAINBOW_WORDS = ["water", "droplet", "mist", "glow", "refract", "reflect", "scatter", "particles", "wave",
                 "color", "spectrum", "raindrop", "atmosphere", "frequency", "shower", "sky", "shimmer",
                 "light", "storm", "sunny", "sunburst", "phenomenon", "rain", "sun", "rainbow", "optical",
                 "prism", "fog", "ice", "cloud"]
# server/routes_generate_test.go: the model's own system prompt, and the request's.
MODEL_SYSTEM = "You are a helpful assistant."
MAGIC = "You can perform magic tricks."
HELLO = [{"role": "user", "content": "Hello!"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather",
        "parameters": {
            "type": "object",
            "required": ["location"],
            "properties": {
                "location": {"type": "string", "description": "The city and state"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
        },
    },
}


def gguf_digest(env):
    """The sha256 the fetched model file was verified against (its `.verified` stamp)."""
    with open(os.environ[env] + ".verified") as f:
        return "sha256:" + f.read().split()[2]


def expect_error(status, call):
    with pytest.raises(ollama.ResponseError) as info:
        call()
    assert info.value.status_code == status, info.value
    return info.value.error


def has_any(text, words):
    text = text.lower()
    return any(w in text for w in words)


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def names(base):
    return sorted(m.model for m in client(base).list().models)


def show_raw(base, name):
    r = httpx.post(f"{base}/api/show", json={"model": name}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def parameter_lines(text):
    """Ollama's show `parameters`: one `name value` a line, the columns padded; normalised."""
    return sorted(" ".join(line.split()) for line in (text or "").splitlines() if line.strip())


def prompt_tokens(oc, model, messages=None, prompt=None, **kw):
    """The prompt's length in tokens, as the server counted it (one token generated)."""
    opts = {"temperature": 0, "num_predict": 1}
    if messages is not None:
        return oc.chat(model=model, messages=messages, options=opts, **kw).prompt_eval_count
    return oc.generate(model=model, prompt=prompt, options=opts, **kw).prompt_eval_count


def gguf_string(path, key):
    """One string value of a GGUF file's metadata (read up to it, not the whole file)."""
    sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
    with open(path, "rb") as f:
        def u(fmt):
            return struct.unpack("<" + fmt, f.read(struct.calcsize(fmt)))[0]

        def string():
            return f.read(u("Q"))

        def skip(kind):
            if kind == 8:
                f.seek(u("Q"), 1)
            elif kind == 9:
                inner, n = u("I"), u("Q")
                if inner in sizes:
                    f.seek(sizes[inner] * n, 1)
                else:
                    for _ in range(n):
                        skip(inner)
            else:
                f.seek(sizes[kind], 1)

        assert f.read(4) == b"GGUF"
        u("I"), u("Q")
        for _ in range(u("Q")):
            name, kind = string().decode(), u("I")
            if name == key:
                assert kind == 8
                return string().decode()
            skip(kind)
    raise KeyError(key)


@pytest.fixture(scope="module")
def oc(server):
    return ollama.Client(host=server, timeout=120)


@pytest.fixture(scope="module")
def lib(store):  # noqa: F811
    """A library of its own: qwen:test and gemma:test, and `sys:latest`, Qwen with MODEL_SYSTEM."""
    proc, base, log = serve(store, "upstream-lib")
    assert client(base).create(model="sys:latest", from_=QWEN, system=MODEL_SYSTEM).status == "success"
    yield base
    conftest._stop_server(proc, log)


class Bare:
    def __init__(self, base, tags, v1, digest):
        self.base, self.tags, self.v1, self.digest = base, tags, v1, digest


@pytest.fixture(scope="module")
def bare():
    """An empty library (its listings answered first), then Gemma's GGUF uploaded as a blob."""
    proc, base, log = serve(None, "upstream-bare", "--no-default-model")
    tags = httpx.get(f"{base}/api/tags", timeout=30)
    v1 = httpx.get(f"{base}/v1/models", timeout=30)
    digest = client(base).create_blob(os.environ["MINERVA_GEMMA_GGUF"])
    assert digest == gguf_digest("MINERVA_GEMMA_GGUF")
    yield Bare(base, tags, v1, digest)
    conftest._stop_server(proc, log)


def make(base, name, digest, **kw):
    r = client(base).create(model=name, files={"test.gguf": digest}, **kw)
    assert r.status == "success"


# --- server/routes_test.go TestRoutes -------------------------------------------------------


def test_routes_version_handler(http):
    """upstream: server/routes_test.go TestRoutes/Version Handler"""
    r = http.get("/api/version")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    version = r.json()["version"]
    assert r.text == json.dumps({"version": version}, separators=(",", ":"))


def test_routes_tags_handler_no_tags(bare):
    """upstream: server/routes_test.go TestRoutes/Tags Handler (no tags)"""
    assert bare.tags.status_code == 200
    assert bare.tags.headers["content-type"] == "application/json; charset=utf-8"
    assert bare.tags.json()["models"] == []  # a list, never null


def test_routes_openai_empty_list(bare):
    """upstream: server/routes_test.go TestRoutes/openai empty list. Ollama says
    `application/json` here, Minerva `application/json; charset=utf-8` on every route (README)."""
    assert bare.v1.status_code == 200
    assert bare.v1.headers["content-type"].startswith("application/json")
    body = bare.v1.json()
    assert body["object"] == "list" and body["data"] == []


def test_routes_tags_handler_yes_tags(bare):
    """upstream: server/routes_test.go TestRoutes/Tags Handler (yes tags)"""
    make(bare.base, "test-model", bare.digest)
    r = httpx.get(f"{bare.base}/api/tags", timeout=30)
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert "expires_at" not in r.text
    assert "test-model:latest" in [m["name"] for m in r.json()["models"]]


def test_routes_openai_list_models_with_tags(bare):
    """upstream: server/routes_test.go TestRoutes/openai list models with tags (the id part)"""
    make(bare.base, "test-model", bare.digest)
    v1 = httpx.get(f"{bare.base}/v1/models", timeout=30).json()["data"]
    assert [m["object"] for m in v1 if m["id"] == "test-model:latest"] == ["model"]


def test_routes_openai_list_models_with_tags_owned_by(bare):
    """upstream: server/routes_test.go TestRoutes/openai list models with tags (owned_by).
    A documented difference: Minerva's models are owned by "minerva" (Ollama: "library")."""
    make(bare.base, "test-model", bare.digest)
    v1 = httpx.get(f"{bare.base}/v1/models", timeout=30).json()["data"]
    assert [m["owned_by"] for m in v1 if m["id"] == "test-model:latest"] == ["minerva"]


def test_routes_delete_model_handler(bare):
    """upstream: server/routes_test.go TestRoutes/Delete Model Handler"""
    make(bare.base, "model_to_delete", bare.digest)
    r = httpx.request("DELETE", f"{bare.base}/api/delete", json={"name": "model_to_delete"}, timeout=30)
    assert r.status_code == 200, r.text
    assert "model_to_delete:latest" not in names(bare.base)
    expect_error(404, lambda: client(bare.base).show("model_to_delete"))


def test_routes_delete_non_existent_model(bare):
    """upstream: server/routes_test.go TestRoutes/Delete Non-existent Model"""
    r = httpx.request("DELETE", f"{bare.base}/api/delete", json={"name": "non_existent_model"}, timeout=30)
    assert r.status_code == 404
    assert "not found" in r.json()["error"]


def test_routes_create_model_handler(bare):
    """upstream: server/routes_test.go TestRoutes/Create Model Handler"""
    r = httpx.post(f"{bare.base}/api/create", timeout=60,
                   json={"name": "t-bone", "files": {"test.gguf": bare.digest}, "stream": False})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["status"] == "success"
    assert "t-bone:latest" in names(bare.base)
    assert client(bare.base).show("t-bone").details.format == "gguf"


def test_routes_copy_model_handler(bare):
    """upstream: server/routes_test.go TestRoutes/Copy Model Handler"""
    make(bare.base, "hamshank", bare.digest)
    r = httpx.post(f"{bare.base}/api/copy", json={"source": "hamshank", "destination": "beefsteak"}, timeout=30)
    assert r.status_code == 200, r.text
    assert {"hamshank:latest", "beefsteak:latest"} <= set(names(bare.base))
    assert client(bare.base).show("beefsteak").details.family == "gemma3"


def test_routes_show_model_handler(bare):
    """upstream: server/routes_test.go TestRoutes/Show Model Handler (their model file has no
    tensors, so its parameter count is 0; Gemma's is its own)"""
    make(bare.base, "show-model", bare.digest, parameters={"seed": 42, "top_p": 0.9, "stop": ["foo", "bar"]})
    r = httpx.post(f"{bare.base}/api/show", json={"model": "show-model"}, timeout=30)
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    shown = r.json()
    assert parameter_lines(shown["parameters"]) == ["seed 42", 'stop "bar"', 'stop "foo"', "top_p 0.9"]
    assert isinstance(shown["model_info"]["general.parameter_count"], (int, float))


def test_routes_openai_retrieve_model_handler(bare):
    """upstream: server/routes_test.go TestRoutes/openai retrieve model handler (found, as JSON)"""
    make(bare.base, "show-model", bare.digest)
    r = httpx.get(f"{bare.base}/v1/models/show-model", timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json()["object"] == "model"


def test_routes_openai_retrieve_model_handler_id_and_owner(bare):
    """upstream: server/routes_test.go TestRoutes/openai retrieve model handler (id, owned_by).
    A documented difference: Minerva answers with the full name, tag included, as /v1/models
    lists it (Ollama echoes the name as asked), owned by "minerva"."""
    make(bare.base, "show-model", bare.digest)
    m = httpx.get(f"{bare.base}/v1/models/show-model", timeout=30).json()
    assert (m["id"], m["owned_by"]) == ("show-model:latest", "minerva")


def test_routes_method_not_allowed(http):
    """upstream: server/routes_test.go TestRoutes/Method Not Allowed"""
    assert http.get("/api/show").status_code == 405


# --- server/routes_test.go, the other HTTP-level tests ------------------------------------


def test_manifest_case_sensitivity(bare):
    """upstream: server/routes_test.go TestManifestCaseSensitivity (create, create again and copy
    under case-shuffled spellings of one name keep one model; its pull and push steps are not
    ported). Minerva keeps names lowercase (README), Ollama the first spelling."""
    def count():
        return [n for n in names(bare.base) if n.lower() == "example/namespace/model:tag"]

    make(bare.base, "Example/NameSpace/Model:Tag", bare.digest)
    assert count() == ["example/namespace/model:tag"]
    make(bare.base, "eXample/namespace/MODEL:tAg", bare.digest)
    assert count() == ["example/namespace/model:tag"]
    r = httpx.post(f"{bare.base}/api/copy", timeout=30,
                   json={"source": "EXAMPLE/namespace/model:tag", "destination": "example/NAMESPACE/model:TAG"})
    assert r.status_code == 200, r.text
    assert count() == ["example/namespace/model:tag"]


def test_show_template_uses_selected_runtime_template(oc):
    """upstream: server/routes_test.go TestShowTemplateUsesSelectedRuntimeTemplate: show gives
    the template the model runs with, the GGUF's own chat_template."""
    want = gguf_string(os.environ["MINERVA_QWEN_GGUF"], "tokenizer.chat_template")
    assert oc.show(MODEL_ID).template == want


# --- server/routes_list_test.go -----------------------------------------------------------

LIST_NAMES = ["mistral:7b-instruct-q4_0", "zephyr:7b-beta-q5_K_M", "apple/OpenELM:latest", "boreas:2b-code-v1.5-q6_K",
              "notus:7b-v1-IQ2_S", "mynamespace/apeliotes:latest", "myhost/mynamespace/lips:code"]


def test_list(bare):
    """upstream: server/routes_list_test.go TestList. The names come back lowercase in Minerva
    (names are case-insensitive, stored lowercase: README), as Ollama spells them otherwise."""
    for n in LIST_NAMES:
        make(bare.base, n, bare.digest)
    listed = {m["name"]: m for m in httpx.get(f"{bare.base}/api/tags", timeout=30).json()["models"]}
    for n in LIST_NAMES:
        assert n.lower() in listed, (n, sorted(listed))
        assert "completion" in listed[n.lower()]["capabilities"]


def tags_and_v1(bare):
    make(bare.base, "older-model", bare.digest)
    time.sleep(1.1)
    make(bare.base, "newer-model", bare.digest)
    tags = httpx.get(f"{bare.base}/api/tags", timeout=30).json()["models"]
    v1 = httpx.get(f"{bare.base}/v1/models", timeout=30).json()["data"]
    return tags, v1


def test_openai_list_matches_tags_models(bare):
    """upstream: server/routes_list_test.go TestOpenAIListMatchesTagsModels (the same models,
    each `created` its `modified_at`; the order: the test below)"""
    from datetime import datetime
    tags, v1 = tags_and_v1(bare)
    created = {m["id"]: m["created"] for m in v1}
    assert sorted(created) == sorted(t["model"] for t in tags)
    for t in tags:
        modified = datetime.fromisoformat(t["modified_at"].replace("Z", "+00:00"))
        assert created[t["model"]] == int(modified.timestamp()), t
    order = [t["model"] for t in tags]
    assert order.index("newer-model:latest") < order.index("older-model:latest")


def test_openai_list_matches_tags_models_order(bare):
    """upstream: server/routes_list_test.go TestOpenAIListMatchesTagsModels (the order)"""
    tags, v1 = tags_and_v1(bare)
    assert [m["id"] for m in v1] == [t["model"] for t in tags]


# --- server/routes_delete_test.go ---------------------------------------------------------


def test_delete(tmp_path):
    """upstream: server/routes_delete_test.go TestDelete: two models on one file; deleting the
    first keeps the file for the second, deleting the second removes it (the second differs by
    its template, as upstream's)."""
    proc, base, log = serve(None, "upstream-delete", "--no-default-model")
    try:
        c = client(base)
        digest = c.create_blob(os.environ["MINERVA_GEMMA_GGUF"])
        make(base, "test", digest)
        make(base, "test2", digest, template="{{ .System }} {{ .Prompt }}")
        assert names(base) == ["test2:latest", "test:latest"]
        assert c.delete("test").status == "success"
        assert names(base) == ["test2:latest"]
        assert httpx.head(f"{base}/api/blobs/{digest}", timeout=30).status_code == 200
        assert c.generate(model="test2", prompt="Hi", options={"num_predict": 1}).done
        assert c.delete("test2").status == "success"
        assert names(base) == []
        assert httpx.head(f"{base}/api/blobs/{digest}", timeout=30).status_code == 404
    finally:
        conftest._stop_server(proc, log)


# --- server/routes_create_test.go ---------------------------------------------------------


def test_create_from_bin(bare):
    """upstream: server/routes_create_test.go TestCreateFromBin, and its subtests
    empty file digest, empty adapter digest (Minerva refuses every adapter: README)"""
    make(bare.base, "test", bare.digest)
    assert "test:latest" in names(bare.base)
    before = names(bare.base)
    r = httpx.post(f"{bare.base}/api/create", timeout=30,
                   json={"model": "my-gguf-model", "files": {"0.gguf": ""}, "stream": False})
    assert r.status_code == 400, r.text
    r = httpx.post(f"{bare.base}/api/create", timeout=30,
                   json={"model": "my-gguf-model", "files": {"0.gguf": bare.digest},
                         "adapters": {"adapter.gguf": ""}, "stream": False})
    assert r.status_code == 400, r.text
    assert names(bare.base) == before


def test_create_from_bin_empty_file_digest_message(bare):
    """upstream: server/routes_create_test.go TestCreateFromBin/empty file digest (the message)"""
    r = httpx.post(f"{bare.base}/api/create", timeout=30,
                   json={"model": "my-gguf-model", "files": {"0.gguf": ""}, "stream": False})
    assert "invalid digest format" in r.json()["error"]


def test_create_from_model(bare):
    """upstream: server/routes_create_test.go TestCreateFromModel"""
    make(bare.base, "cfm", bare.digest)
    assert client(bare.base).create(model="cfm2", from_="cfm").status == "success"
    assert {"cfm:latest", "cfm2:latest"} <= set(names(bare.base))


def test_create_unsets_system(bare):
    """upstream: server/routes_create_test.go TestCreateUnsetsSystem"""
    make(bare.base, "unset", bare.digest, system="Say hi!")
    assert show_raw(bare.base, "unset").get("system") == "Say hi!"
    make(bare.base, "unset", bare.digest, system="")
    assert not show_raw(bare.base, "unset").get("system")


def test_create_merge_parameters(bare):
    """upstream: server/routes_create_test.go TestCreateMergeParameters: a model made from
    another takes its parameters, its own win, and a list (stop) is replaced whole."""
    make(bare.base, "merge", bare.digest, parameters={"temperature": 1, "top_k": 10, "stop": ["USER:", "ASSISTANT:"]})
    c = client(bare.base)
    c.create(model="merge2", from_="merge", parameters={"temperature": 0.6, "top_p": 0.7})
    assert parameter_lines(show_raw(bare.base, "merge2")["parameters"]) == sorted(
        ['stop "USER:"', 'stop "ASSISTANT:"', "temperature 0.6", "top_k 10", "top_p 0.7"])
    c.create(model="merge2", from_="merge", parameters={"temperature": 0.6, "top_p": 0.7, "stop": ["<|endoftext|>"]})
    assert parameter_lines(show_raw(bare.base, "merge2")["parameters"]) == sorted(
        ['stop "<|endoftext|>"', "temperature 0.6", "top_k 10", "top_p 0.7"])


def test_create_replaces_messages(bare):
    """upstream: server/routes_create_test.go TestCreateReplacesMessages"""
    first = [{"role": "assistant", "content": "What is my purpose?"}, {"role": "user", "content": "You run tests."},
             {"role": "assistant", "content": "Oh, my god."}]
    second = [{"role": "assistant", "content": "You're a test, Harry."}, {"role": "user", "content": "I-I'm a what?"},
              {"role": "assistant", "content": "A test. And a thumping good one at that, I'd wager."}]
    make(bare.base, "msgs", bare.digest, messages=first)
    client(bare.base).create(model="msgs2", from_="msgs", messages=second)
    assert show_raw(bare.base, "msgs2")["messages"] == second
    assert show_raw(bare.base, "msgs")["messages"] == first


def template_lines(base, name):
    return [line for line in show_raw(base, name)["modelfile"].splitlines() if line.upper().startswith("TEMPLATE")]


def test_create_removes_layers(bare):
    """upstream: server/routes_create_test.go TestCreateRemovesLayers: creating a model again with
    another template replaces the template; the old one does not linger, the model file stays.
    (Ollama stores the template as a blob of its own and checks the blob directory; Minerva keeps
    a created model's settings in its manifest, so the port checks what the API shows: the
    template, the Modelfile's one TEMPLATE, the model file's blob, and no blob of the old text.)"""
    import hashlib
    make(bare.base, "layers", bare.digest, template="{{ .Prompt }}")
    assert show_raw(bare.base, "layers")["template"] == "{{ .Prompt }}"
    make(bare.base, "layers", bare.digest, template="{{ .System }} {{ .Prompt }}")
    assert show_raw(bare.base, "layers")["template"] == "{{ .System }} {{ .Prompt }}"
    assert len(template_lines(bare.base, "layers")) == 1
    assert "{{ .System }} {{ .Prompt }}" in template_lines(bare.base, "layers")[0]
    assert names(bare.base).count("layers:latest") == 1
    assert httpx.head(f"{bare.base}/api/blobs/{bare.digest}", timeout=30).status_code == 200
    old = "sha256:" + hashlib.sha256(b"{{ .Prompt }}").hexdigest()
    assert httpx.head(f"{bare.base}/api/blobs/{old}", timeout=30).status_code == 404


def test_create_template_system(bare):
    """upstream: server/routes_create_test.go TestCreateTemplateSystem: a model created with a
    template and a system prompt keeps both as given (Ollama's template and system layers). The
    port also renders it once: the template with the system prompt makes the prompt."""
    make(bare.base, "tmpl-system", bare.digest, template="{{ .System }} {{ .Prompt }}", system="Say bye!")
    shown = show_raw(bare.base, "tmpl-system")
    assert shown["template"] == "{{ .System }} {{ .Prompt }}"
    assert shown["system"] == "Say bye!"
    c = client(bare.base)
    assert prompt_tokens(c, "tmpl-system", prompt="Hi") == prompt_tokens(c, "tmpl-system", prompt="Say bye! Hi", raw=True)


@pytest.mark.parametrize("template", [
    "{{ .Prompt",
    "{{ if .Prompt }}",
    "{{ Prompt }}",
], ids=["incomplete template", "template with unclosed if", "template with undefined function"])
def test_create_template_system_refused(bare, template):
    """upstream: server/routes_create_test.go TestCreateTemplateSystem/incomplete template,
    /template with unclosed if, /template with undefined function: a 400, nothing made."""
    r = httpx.post(f"{bare.base}/api/create", timeout=60,
                   json={"model": "bad-template", "files": {"test.gguf": bare.digest}, "template": template,
                         "stream": False})
    assert r.status_code == 400, r.text
    assert "bad-template:latest" not in names(bare.base)


def test_create_licenses(bare):
    """upstream: server/routes_create_test.go TestCreateLicenses: a list of licences, each kept
    (Ollama: a layer each), shown joined by a newline as Ollama's show joins them."""
    make(bare.base, "licenses", bare.digest, license=["MIT", "Apache-2.0"])
    assert client(bare.base).show("licenses").license == "MIT\nApache-2.0"
    assert show_raw(bare.base, "licenses")["license"] == "MIT\nApache-2.0"


@pytest.mark.parametrize("content", [b"12345678", b"123"], ids=["unsupported file type", "file with less than 4 bytes"])
def test_detect_model_type_from_files_refused(bare, content):
    """upstream: server/routes_create_test.go TestDetectModelTypeFromFiles/unsupported file type,
    TestDetectModelTypeFromFiles/file with less than 4 bytes: no model is made of such a file."""
    import hashlib
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    assert httpx.post(f"{bare.base}/api/blobs/{digest}", content=content, timeout=30).status_code == 201
    before = names(bare.base)
    expect_error(400, lambda: client(bare.base).create(model="junk", files={"model": digest}))
    assert names(bare.base) == before


def test_detect_model_type_gguf_file_without_extension(bare):
    """upstream: server/routes_create_test.go TestDetectModelTypeFromFiles/gguf file w/o extension"""
    assert client(bare.base).create(model="noext", files={"model": bare.digest}).status == "success"
    assert client(bare.base).show("noext").details.format == "gguf"


# --- server/routes_generate_test.go TestGenerateChat --------------------------------------


@pytest.mark.parametrize("body", [b"null\n", b"{}"], ids=["missing body", "missing model"])
def test_generate_chat_missing_body_or_model(http, body):
    """upstream: server/routes_generate_test.go TestGenerateChat/missing body (a JSON null),
    TestGenerateChat/missing model (the status and shape; the message: the test below)"""
    r = http.post("/api/chat", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert set(r.json()) == {"error"}


@pytest.mark.parametrize("body", [b"null\n", b"{}"], ids=["missing body", "missing model"])
def test_generate_chat_missing_body_or_model_message(http, body):
    """upstream: server/routes_generate_test.go TestGenerateChat/missing body, /missing model.
    A JSON null is not an object: Minerva says so (Ollama reads it as an empty request)."""
    r = http.post("/api/chat", content=body, headers={"content-type": "application/json"})
    want = "model is required" if body == b"{}" else "the body must be a JSON object"
    assert r.json()["error"].startswith(want), r.text


def test_generate_chat_missing_thinking_capability(oc):
    """upstream: server/routes_generate_test.go TestGenerateChat/missing thinking capability"""
    error = expect_error(400, lambda: oc.chat(model=MODEL_ID, messages=HELLO, think=True))
    assert error == f'"{MODEL_ID}" does not support thinking'


def test_generate_chat_think_false_on_a_model_that_cannot_think(oc):
    """upstream: server/routes_generate_test.go TestGenerateChat/model can't think but think set false"""
    r = oc.chat(model=MODEL_ID, messages=HELLO, think=False, options={**GREEDY, "num_predict": 2})
    assert r.done and not r.message.thinking


def test_generate_chat_load_model(oc):
    """upstream: server/routes_generate_test.go TestGenerateChat/load model"""
    r = oc.chat(model=MODEL_ID, messages=[])
    assert r.model == MODEL_ID and r.done is True and r.done_reason == "load"


def check_final(r, stop=True):
    """checkChatResponse / checkGenerateResponse of the upstream tests: every count and duration
    of the final object set (load_duration too)."""
    assert r.done is True
    if stop:
        assert r.done_reason == "stop"
    assert r.prompt_eval_count > 0 and r.prompt_eval_duration > 0
    assert r.eval_count > 0 and r.eval_duration > 0
    assert r.load_duration > 0
    assert r.total_duration > 0


def test_generate_chat_messages(oc):
    """upstream: server/routes_generate_test.go TestGenerateChat/messages"""
    r = oc.chat(model=MODEL_ID, messages=[{"role": "user", "content": "Reply with the single word: yes"}],
                stream=False, options={**GREEDY, "num_predict": 12})
    assert r.model == MODEL_ID
    assert r.message.role == "assistant" and r.message.content
    assert not r.message.tool_calls and not r.message.thinking
    check_final(r)


def test_generate_chat_messages_with_model_system(lib):
    """upstream: server/routes_generate_test.go TestGenerateChat/messages with model system"""
    c = client(lib)
    assert prompt_tokens(c, "sys", HELLO) == prompt_tokens(c, QWEN, [{"role": "system", "content": MODEL_SYSTEM}, *HELLO])


def test_generate_chat_messages_with_system(lib):
    """upstream: server/routes_generate_test.go TestGenerateChat/messages with system: the
    request's system message replaces the model's."""
    c = client(lib)
    ask = [{"role": "system", "content": MAGIC}, *HELLO]
    assert prompt_tokens(c, "sys", ask) == prompt_tokens(c, QWEN, ask)


def test_generate_chat_messages_with_interleaved_system(lib):
    """upstream: server/routes_generate_test.go TestGenerateChat/messages with interleaved system:
    a system message later in the conversation does not replace the model's, which comes first."""
    c = client(lib)
    ask = [*HELLO, {"role": "assistant", "content": "I can help you with that."},
           {"role": "system", "content": MAGIC}, {"role": "user", "content": "Help me write tests."}]
    spelled = [{"role": "system", "content": MODEL_SYSTEM}, *ask]
    assert prompt_tokens(c, "sys", ask) == prompt_tokens(c, QWEN, spelled)


SEATTLE = [{"role": "user", "content": "What's the weather in Seattle?"}]


def test_generate_chat_messages_with_tools_non_streaming(http):
    """upstream: server/routes_generate_test.go TestGenerateChat/messages with tools (non-streaming)"""
    r = http.post("/api/chat", json={"model": MODEL_ID, "messages": SEATTLE, "tools": [WEATHER_TOOL], "stream": False,
                                     "options": {**GREEDY, "num_predict": 60}})
    assert r.status_code == 200, r.text
    calls = r.json()["message"]["tool_calls"]
    assert len(calls) == 1
    call = calls[0]
    assert call["function"]["name"] == "get_weather"
    assert "Seattle" in call["function"]["arguments"]["location"]
    assert call.get("id", "").startswith("call_"), call


def test_generate_chat_messages_with_tools_streaming(http):
    """upstream: server/routes_generate_test.go TestGenerateChat/messages with tools (streaming).
    Upstream's mock ends the call in the last (done) object; a real model stops after the call,
    so the port checks the call comes whole, once, and the stream then ends."""
    body = {"model": MODEL_ID, "messages": SEATTLE, "tools": [WEATHER_TOOL], "options": {**GREEDY, "num_predict": 60}}
    with http.stream("POST", "/api/chat", json=body) as r:
        assert r.status_code == 200
        lines = [json.loads(line) for line in r.iter_lines() if line]
    calls = [c for line in lines for c in (line["message"].get("tool_calls") or [])]
    assert [c["function"]["name"] for c in calls] == ["get_weather"]
    assert "Seattle" in calls[0]["function"]["arguments"]["location"]
    assert calls[0].get("id", "").startswith("call_"), calls[0]
    assert lines[-1]["done"] is True


def test_generate_chat_messages_with_tools_and_logprobs_streaming(http):
    """upstream: server/routes_generate_test.go TestGenerateChat/messages with tools and logprobs
    (streaming): the logprobs of the tokens held back while a call is parsed still come."""
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Weather in Seattle?"}], "logprobs": True,
            "tools": [WEATHER_TOOL], "options": {**GREEDY, "num_predict": 60}}
    with http.stream("POST", "/api/chat", json=body) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert any(line["message"].get("tool_calls") for line in lines)
    assert sum(len(line.get("logprobs") or []) for line in lines) == lines[-1]["eval_count"]


# --- server/routes_generate_test.go TestGenerate ------------------------------------------


@pytest.mark.parametrize("body", [b"null\n", b"{}"], ids=["missing body", "missing model"])
def test_generate_missing_body_or_model(http, body):
    """upstream: server/routes_generate_test.go TestGenerate/missing body, TestGenerate/missing model.
    A documented difference: a request without a model is a 400 "model is required" (as Ollama's
    chat answers), not Ollama's 404 "model '' not found"."""
    r = http.post("/api/generate", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    want = "model is required" if body == b"{}" else "the body must be a JSON object"
    assert r.json()["error"].startswith(want), r.text


def test_generate_missing_capabilities_suffix(lib):
    """upstream: server/routes_generate_test.go TestGenerate/missing capabilities suffix (Gemma's
    vocabulary has no fill-in-the-middle tokens; the status, the message: the test below)"""
    c = client(lib)
    assert "insert" not in c.show(GEMMA).capabilities
    expect_error(400, lambda: c.generate(model=GEMMA, prompt="def add(", suffix="    return c"))


def test_generate_missing_capabilities_suffix_message(lib):
    """upstream: server/routes_generate_test.go TestGenerate/missing capabilities suffix (message)"""
    error = expect_error(400, lambda: client(lib).generate(model=GEMMA, prompt="def add(", suffix="    return c"))
    assert "does not support insert" in error


def test_generate_load_model(oc):
    """upstream: server/routes_generate_test.go TestGenerate/load model"""
    r = oc.generate(model=MODEL_ID)
    assert r.model == MODEL_ID and r.done is True and r.done_reason == "load"


def test_generate_prompt(oc):
    """upstream: server/routes_generate_test.go TestGenerate/prompt"""
    r = oc.generate(model=MODEL_ID, prompt="Reply with the single word: yes", stream=False,
                    options={**GREEDY, "num_predict": 12})
    assert r.model == MODEL_ID and r.response
    assert r.context
    check_final(r)


def test_generate_prompt_with_model_system(lib):
    """upstream: server/routes_generate_test.go TestGenerate/prompt with model system"""
    c = client(lib)
    assert prompt_tokens(c, "sys", prompt="Hello!") == prompt_tokens(c, QWEN, prompt="Hello!", system=MODEL_SYSTEM)


def test_generate_prompt_with_system(lib):
    """upstream: server/routes_generate_test.go TestGenerate/prompt with system"""
    c = client(lib)
    assert (prompt_tokens(c, "sys", prompt="Hello!", system=MAGIC)
            == prompt_tokens(c, QWEN, prompt="Hello!", system=MAGIC))


def test_generate_prompt_with_suffix(oc):
    """upstream: server/routes_generate_test.go TestGenerate/prompt with suffix. Upstream's model
    has a created FIM template; Qwen's vocabulary has its own FIM tokens, used as Ollama's FIM
    templates use them (prefix, suffix, middle)."""
    fim = "<|fim_prefix|>def add(<|fim_suffix|>    return c<|fim_middle|>"
    with_suffix = oc.generate(model=MODEL_ID, prompt="def add(", suffix="    return c", options={**GREEDY, "num_predict": 4})
    raw = oc.generate(model=MODEL_ID, prompt=fim, raw=True, options={**GREEDY, "num_predict": 4})
    assert with_suffix.prompt_eval_count == raw.prompt_eval_count
    assert with_suffix.response == raw.response


# The template of a request (upstream: TestGenerate/prompt with template), Ollama's Go syntax.
TURN_TEMPLATE = """{{- if .System }}{{ .System }} {{ end }}
{{- if .Prompt }}### USER {{ .Prompt }} {{ end }}
{{- if .Response }}### ASSISTANT {{ .Response }} {{ end }}"""
# The template of upstream's created model test-suffix: fill in the middle, else the prompt.
FIM_TEMPLATE = """{{- if .Suffix }}<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>
{{- else }}{{ .Prompt }}
{{- end }}"""


def test_generate_prompt_with_template(lib):
    """upstream: server/routes_generate_test.go TestGenerate/prompt with template: the request's
    template, given the request's system prompt (not the model's) and the prompt, renders the
    prompt in place of the model's template: "You can perform magic tricks. ### USER Help me
    write tests. " (compared by length with that text sent raw)."""
    c = client(lib)
    r = c.generate(model="sys", prompt="Help me write tests.", system=MAGIC, template=TURN_TEMPLATE,
                   options={**GREEDY, "num_predict": 3})
    assert r.done and r.context and r.eval_count > 0 and r.response
    spelled = prompt_tokens(c, QWEN, prompt=f"{MAGIC} ### USER Help me write tests. ", raw=True)
    assert r.prompt_eval_count == spelled


def suffix_model(base):
    """Upstream's test-suffix: a model (here Gemma, no FIM tokens of its own) made with FIM_TEMPLATE."""
    assert client(base).create(model="test-suffix", from_=GEMMA, template=FIM_TEMPLATE).status == "success"
    return "test-suffix"


def test_generate_prompt_with_suffix_template(lib):
    """upstream: server/routes_generate_test.go TestGenerate/prompt with suffix, on its created
    model: the template's suffix branch renders "<PRE> def add( <SUF>    return c <MID>"."""
    c = client(lib)
    model = suffix_model(lib)
    assert (prompt_tokens(c, model, prompt="def add(", suffix="    return c")
            == prompt_tokens(c, GEMMA, prompt="<PRE> def add( <SUF>    return c <MID>", raw=True))


def test_generate_prompt_without_suffix(lib):
    """upstream: server/routes_generate_test.go TestGenerate/prompt without suffix: the same
    model, no suffix: the template's other branch, the prompt as it is ("def add(")."""
    c = client(lib)
    model = suffix_model(lib)
    assert prompt_tokens(c, model, prompt="def add(") == prompt_tokens(c, GEMMA, prompt="def add(", raw=True)


def test_generate_raw(lib):
    """upstream: server/routes_generate_test.go TestGenerate/raw: the prompt as it is, without the
    model's system prompt or template."""
    c = client(lib)
    assert (prompt_tokens(c, "sys", prompt="Help me write tests.", raw=True)
            == prompt_tokens(c, QWEN, prompt="Help me write tests.", raw=True)
            < prompt_tokens(c, QWEN, prompt="Help me write tests."))


# --- server/routes_generate_test.go: logprobs, unload, chat templates ---------------------


@pytest.mark.parametrize("top", [-1, 21], ids=["invalid top_logprobs negative", "invalid top_logprobs too high"])
@pytest.mark.parametrize("route", ["generate", "chat"])
def test_logprobs_invalid_top_logprobs(http, route, top):
    """upstream: server/routes_generate_test.go TestGenerateLogprobs/invalid top_logprobs negative,
    .../invalid top_logprobs too high, and TestChatLogprobs/ the same two"""
    body = {"model": MODEL_ID, "top_logprobs": top, "logprobs": True}
    body.update({"prompt": "Hello"} if route == "generate" else {"messages": [{"role": "user", "content": "Hello"}]})
    r = http.post(f"/api/{route}", json=body)
    assert r.status_code == 400
    assert r.json() == {"error": "top_logprobs must be between 0 and 20"}


@pytest.mark.parametrize("route", ["generate", "chat"])
def test_logprobs_returns_logprob_bytes(http, route):
    """upstream: server/routes_generate_test.go TestGenerateLogprobs/returns logprob bytes when
    requested, TestChatLogprobs/returns logprob bytes when requested"""
    body = {"model": MODEL_ID, "stream": False, "logprobs": True, "top_logprobs": 2,
            "options": {**GREEDY, "num_predict": 3}}
    body.update({"prompt": "Hi"} if route == "generate" else {"messages": [{"role": "user", "content": "Hi"}]})
    r = http.post(f"/api/{route}", json=body).json()
    assert len(r["logprobs"]) == r["eval_count"] == 3
    for lp in r["logprobs"]:
        assert lp["bytes"] == list(lp["token"].encode()), lp
        assert len(lp["top_logprobs"]) == 2
        for top in lp["top_logprobs"]:
            assert top["bytes"] == list(top["token"].encode()), top


def test_generate_unload_with_empty_prompt_and_keepalive_0(lib):
    """upstream: server/routes_generate_test.go TestGenerateUnload/unload with empty prompt and
    keepalive 0: answered `unload`, and a model that was not loaded is not loaded for it."""
    c = client(lib)
    assert c.create(model="idle:latest", from_=GEMMA).status == "success"
    r = c.generate(model="idle:latest", prompt="", keep_alive=0)
    assert r.done is True and r.done_reason == "unload"
    assert "idle:latest" not in [m.model for m in c.ps().models]
    states = {m["id"]: m["state"] for m in httpx.get(f"{lib}/v1/models", timeout=30).json()["data"]}
    assert states["idle:latest"] == "unloaded"


def test_generate_handler_uses_gguf_chat_template(oc):
    """upstream: server/routes_generate_test.go TestGenerateHandlerChatTemplateRoute/uses GGUF
    chat_template when no Go TEMPLATE exists, and integration/generate_jinja_test.go
    TestGenerateNativeJinjaDebugRender/generate matches chat: generate renders its prompt as the
    one user message of the GGUF's chat template (compared by length: no debug render here)."""
    prompt = "Reply with one short sentence about blue skies."
    assert prompt_tokens(oc, MODEL_ID, prompt=prompt) == prompt_tokens(oc, MODEL_ID, [{"role": "user", "content": prompt}])


def test_generate_handler_prefers_gguf_chat_template(lib):
    """upstream: server/routes_generate_test.go TestGenerateHandlerChatTemplateRoute/uses preferred
    GGUF chat_template over Go TEMPLATE: a model whose GGUF chat template handles tools, created
    with a Go template that does not, renders generate's prompt with the GGUF's template (the
    prompt as the base model renders it, not "go-template: hello").
    A documented difference: in Minerva a created template always replaces the model file's (the
    user wrote TEMPLATE to have it used), so the prompt is "go-template: hello"."""
    c = client(lib)
    assert c.create(model="go-template", from_=QWEN,
                    template="{{ range .Messages }}go-template: {{ .Content }}{{ end }}").status == "success"
    assert (prompt_tokens(c, "go-template", prompt="hello")
            == prompt_tokens(c, QWEN, prompt="go-template: hello", raw=True))


def test_generate_handler_prepends_deprecated_context(oc):
    """upstream: server/routes_generate_test.go TestGenerateHandlerChatTemplateRoute/prepends
    deprecated context to native chat template prompt, and integration/generate_jinja_test.go
    TestGenerateNativeJinjaDebugRender/context prepends prior tokens"""
    first = oc.generate(model=MODEL_ID, prompt="Say hello.", options={"num_predict": 1, "temperature": 0})
    assert first.context
    alone = prompt_tokens(oc, MODEL_ID, prompt="Say goodbye.")
    with_context = oc.generate(model=MODEL_ID, prompt="Say goodbye.", context=first.context,
                               options={"num_predict": 1, "temperature": 0})
    assert with_context.prompt_eval_count == len(first.context) + alone
    assert with_context.context[:len(first.context)] == first.context


# --- integration/api_test.go --------------------------------------------------------------


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no_stream"])
def test_api_generate(oc, stream):
    """upstream: integration/api_test.go runAPIGenerate (TestAPI/api-generate/stream, /no_stream),
    and its /api/ps check of the loaded model. Upstream lets the model answer whole and looks for
    one of BLUE_SKY_WORDS; Qwen coder 0.5B's greedy answer ("The sky is blue because it is a
    reflection of the sun.") names none, a model limit: eight tokens, the answer on topic."""
    parts = oc.generate(model=MODEL_ID, prompt=BLUE_SKY, stream=stream, options={**GREEDY, "num_predict": 8})
    parts = list(parts) if stream else [parts]
    assert all(p.model for p in parts)
    last = parts[-1]
    assert last.done and last.done_reason
    assert last.total_duration and last.load_duration and last.prompt_eval_duration
    assert last.eval_count and last.eval_duration and last.context
    assert "sky" in "".join(p.response for p in parts).lower()
    running = [m for m in oc.ps().models if MODEL_ID in m.name]
    assert len(running) == 1
    m = running[0]
    assert m.model and m.size and m.digest and m.expires_at
    d = m.details
    assert d.format and d.family and d.parameter_size and d.quantization_level


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "no_stream"])
def test_api_chat(oc, stream):
    """upstream: integration/api_test.go runAPIChat (TestAPI/api-chat/stream, /no_stream); the
    stream one is also integration/basic_test.go runBlueSky (TestBasic/blue-sky). Answers cut
    short as in test_api_generate."""
    parts = oc.chat(model=MODEL_ID, messages=[{"role": "user", "content": BLUE_SKY}], stream=stream,
                    options={**GREEDY, "num_predict": 8})
    parts = list(parts) if stream else [parts]
    assert all(p.model for p in parts)
    last = parts[-1]
    assert last.done and last.done_reason and last.created_at
    assert last.total_duration and last.load_duration and last.prompt_eval_duration
    assert last.eval_count and last.eval_duration and last.prompt_eval_count
    assert "sky" in "".join(p.message.content for p in parts).lower()


def test_api_list_models(oc):
    """upstream: integration/api_test.go runAPIListModels (TestAPI/api-list-models)"""
    models = oc.list().models
    m = next(m for m in models if MODEL_ID in m.model)
    assert m.model and m.modified_at and m.size and m.digest
    d = m.details
    assert d.format and d.family and d.parameter_size and d.quantization_level


def test_api_show_model(lib):
    """upstream: integration/api_test.go runAPIShowModel (TestAPI/api-show-model; upstream shows
    llama3.2, here Gemma: Qwen's GGUF names no license). Loaded first: Minerva's `parameters`
    (num_ctx) are the loaded model's (README)."""
    c = client(lib)
    c.generate(model=GEMMA, prompt="")
    s = c.show(GEMMA)
    assert s.license
    assert s.modelfile and s.parameters and s.template
    d = s.details
    assert d.format and d.family and d.parameter_size and d.quantization_level
    assert s.modelinfo
    assert s.modified_at


@pytest.mark.parametrize("logprobs,top", [(False, 0), (True, 0), (True, 5)],
                         ids=["no_logprobs", "logprobs_only", "logprobs_with_top_5"])
def test_api_generate_logprobs(http, logprobs, top):
    """upstream: integration/api_test.go runAPIGenerateLogprobs (TestAPI/generate-logprobs/...)"""
    body = {"model": MODEL_ID, "prompt": "Why is the sky blue?", "stream": False, "logprobs": logprobs,
            "top_logprobs": top, "options": {**GREEDY, "num_predict": 10}}
    r = http.post("/api/generate", json=body).json()
    if not logprobs:
        assert not r.get("logprobs")
        return
    assert r["logprobs"]
    for lp in r["logprobs"]:
        assert lp["token"] and lp["logprob"] <= 0
        assert lp["bytes"] == list(lp["token"].encode())
        tops = lp.get("top_logprobs") or []
        if top:
            assert 0 < len(tops) <= top
            assert [t["logprob"] for t in tops] == sorted((t["logprob"] for t in tops), reverse=True)
            for t in tops:
                assert t["bytes"] == list(t["token"].encode())
        else:
            assert not tops


def test_api_chat_logprobs(http):
    """upstream: integration/api_test.go runAPIChatLogprobs (TestAPI/chat-logprobs)"""
    body = {"model": MODEL_ID, "messages": [{"role": "user", "content": "Say hello in one word"}], "stream": False,
            "logprobs": True, "top_logprobs": 3, "options": {**GREEDY, "num_predict": 5}}
    r = http.post("/api/chat", json=body).json()
    assert r["logprobs"]
    for lp in r["logprobs"]:
        assert lp["token"] and lp["logprob"] <= 0
        assert lp["bytes"] == list(lp["token"].encode())
        assert 0 < len(lp["top_logprobs"]) <= 3
        for t in lp["top_logprobs"]:
            assert t["bytes"] == list(t["token"].encode())


# --- integration/basic_test.go, chat_cases_test.go ----------------------------------------


def test_chat_model(oc):
    """upstream: integration/chat_cases_test.go runChatModel (TestChat/chat: the blue-sky question
    to each model of a list, temperature 0.1, seed 123; answers cut short as in test_api_generate)"""
    r = oc.chat(model=MODEL_ID, messages=[{"role": "user", "content": BLUE_SKY}],
                options={"temperature": 0.1, "seed": 123, "num_predict": 8})
    assert r.done and "sky" in r.message.content.lower()


def test_unicode_input(oc):
    """upstream: integration/basic_test.go runUnicode (TestBasic/unicode-input). Upstream's model is
    DeepSeek-Coder-V2 (a tokenizer torture test) and its words 散射/频率 (scattering, frequency) come
    late in a long answer; here Qwen's byte-level BPE, eight tokens: Chinese in, Chinese out, no
    broken UTF-8."""
    r = oc.chat(model=MODEL_ID, messages=[{"role": "user", "content": "天空为什么是蓝色的?"}],
                options={**GREEDY, "num_predict": 8})
    assert "天空" in r.message.content and "\ufffd" not in r.message.content, r.message.content


def test_unicode_output(oc):
    """upstream: integration/basic_test.go runExtendedUnicodeOutput (TestBasic/unicode-output)"""
    r = oc.chat(model=MODEL_ID, messages=[{"role": "user", "content": "Output some smily face emoji"}],
                options={**GREEDY, "num_predict": 10})
    assert has_any(r.message.content, ["😀", "😊", "😁", "😂", "😄", "😃"]), r.message.content


def test_num_predict(oc):
    """upstream: integration/basic_test.go runNumPredict (TestBasic/num-predict): exactly
    num_predict tokens, counted by their logprobs over the stream"""
    parts = list(oc.generate(model=MODEL_ID, prompt="Write a long story.", stream=True, logprobs=True,
                             options={**GREEDY, "num_predict": 10}))
    assert sum(len(p.logprobs or []) for p in parts) == 10
    assert parts[-1].eval_count == 10 and parts[-1].done_reason == "length"


# --- integration/context_test.go ----------------------------------------------------------

AUSTRIA = ("What country is this passage referring to?\nOh, don’t speak to me of Austria. Perhaps I don’t understand "
           "things, but Austria never has wished, and does not wish, for war. She is betraying us! Russia alone must "
           "save Europe. Our gracious sovereign recognizes his high vocation and will be true to it. That is the one "
           "thing I have faith in! Our good and wonderful sovereign has to perform the noblest role on earth, and he "
           "is so virtuous and noble that God will not forsake him. He will fulfill his vocation and crush the hydra "
           "of revolution, which has become more terrible than ever in the person of this murderer and villain! We "
           "alone must avenge the blood of the just one.... Whom, I ask you, can we rely on?... England with her "
           "commercial spirit will not and cannot understand the Emperor Alexander’s loftiness of soul. She has "
           "refused to evacuate Malta. She wanted to find, and still seeks, some secret motive in our actions. What "
           "answer did Novosíltsev get? None. The English have not understood and cannot understand the "
           "self-abnegation of our Emperor who wants nothing for himself, but only desires the good of mankind. And "
           "what have they promised? Nothing! And what little they have promised they will not perform! Prussia has "
           "always declared that Buonaparte is invincible, and that all Europe is powerless before him.... And I "
           "don’t believe a word that Hardenburg says, or Haugwitz either. This famous Prussian neutrality is just a "
           "trap. I have faith only in God and the lofty destiny of our adored monarch. He will save Europe!")


def test_context_long_input(oc):
    """upstream: integration/context_test.go runLongInputContext (TestContext/context-long-input):
    a prompt over num_ctx 128 is either refused with a 4xx naming the context, or answered.
    Minerva's window is --ctx-size (num_ctx does not resize it: README), so it is answered."""
    words = ["russia", "german", "france", "england", "austria", "prussia", "europe", "individuals", "coalition",
             "conflict", "napoleonic", "historical"]
    try:
        parts = list(oc.chat(model=MODEL_ID, messages=[{"role": "user", "content": AUSTRIA}], stream=True,
                             options={**GREEDY, "num_ctx": 128, "num_predict": 10}))
    except ollama.ResponseError as e:
        assert 400 <= e.status_code < 500 and "context" in e.error.lower()
        return
    assert has_any("".join(p.message.content for p in parts), words)


def test_generate_with_history(oc):
    """upstream: integration/context_test.go runGenerateWithHistory (TestContext/generate-history;
    one follow-up here, answers cut short)"""
    opts = {**GREEDY, "num_predict": 12}
    first = oc.generate(model=MODEL_ID, prompt=RAINBOW, options=opts)
    assert has_any(first.response, RAINBOW_WORDS)
    second = oc.generate(model=MODEL_ID, prompt=RAINBOW_FOLLOWUP, context=first.context, options=opts)
    assert has_any(second.response, RAINBOW_WORDS)
    assert second.context[:len(first.context)] == first.context


def test_chat_with_history(oc):
    """upstream: integration/context_test.go runChatWithHistory (TestChat/chat-history; one
    follow-up here, answers cut short)"""
    opts = {**GREEDY, "num_predict": 12}
    messages = [{"role": "user", "content": RAINBOW}]
    first = oc.chat(model=MODEL_ID, messages=messages, options=opts)
    assert has_any(first.message.content, RAINBOW_WORDS)
    messages += [{"role": "assistant", "content": first.message.content}, {"role": "user", "content": RAINBOW_FOLLOWUP}]
    second = oc.chat(model=MODEL_ID, messages=messages, options=opts)
    assert has_any(second.message.content, RAINBOW_WORDS)


# --- integration/embed_test.go, embed_cases_test.go ---------------------------------------


def test_embedding_api_and_embed_api(oc):
    """upstream: integration/embed_test.go runAllMiniLMEmbeddings (TestEmbedding/embedding-api),
    runAllMiniLMEmbed (embed-api), runAllMiniLMBatchEmbed (embed-api-batch): one vector of the
    model's width from each route, one per input, and the batch counts the tokens of both.
    (Upstream's reference vectors and token counts are all-minilm's.)"""
    legacy = oc.embeddings(model=MODEL_ID, prompt="why is the sky blue?")
    assert len(legacy.embedding) == 896
    one = oc.embed(model=MODEL_ID, input="why is the sky blue?")
    assert len(one.embeddings) == 1 and len(one.embeddings[0]) == 896
    assert cosine(one.embeddings[0], legacy.embedding) > 0.99
    other = oc.embed(model=MODEL_ID, input="why is the grass green?")
    batch = oc.embed(model=MODEL_ID, input=["why is the sky blue?", "why is the grass green?"])
    assert len(batch.embeddings) == 2
    assert cosine(batch.embeddings[0], one.embeddings[0]) > 0.99
    assert cosine(batch.embeddings[1], other.embeddings[0]) > 0.99
    assert batch.prompt_eval_count == one.prompt_eval_count + other.prompt_eval_count


def test_embed_truncation_runner_token_count_accuracy(oc):
    """upstream: integration/embed_test.go runEmbedTruncation/runner token count accuracy
    (TestEmbedding/embed-truncation)"""
    one = oc.embed(model=MODEL_ID, input="test").prompt_eval_count
    three = oc.embed(model=MODEL_ID, input=["test", "test", "test"]).prompt_eval_count
    assert abs(three - 3 * one) <= 2


def test_embed_large_input(oc):
    """upstream: integration/embed_test.go runEmbedLargeInput (TestEmbedding/embed-large-input;
    one input here, 600 words: past a 512-token batch, as upstream's 512 and 800)"""
    r = oc.embed(model=MODEL_ID, input=" ".join(["word"] * 600))
    assert len(r.embeddings) == 1 and r.embeddings[0]
    assert r.prompt_eval_count >= 600


LONG = "very long input " * 1000  # 3,000 tokens: over the 2,048 of the test servers' window


@pytest.mark.parametrize("inputs", [LONG, ["short input", LONG, "another short input"]],
                         ids=["truncation error status code", "batch truncation error status code"])
def test_embed_status_code(oc, inputs):
    """upstream: integration/embed_test.go runEmbedStatusCode (TestEmbedding/embed-status-code),
    and runAllMiniLMEmbedTruncate/truncate error: truncate false and an input over the window is
    a 4xx that says so. (Upstream shrinks the window with num_ctx 10; Minerva's is --ctx-size.)"""
    with pytest.raises(ollama.ResponseError) as info:
        oc.embed(model=MODEL_ID, input=inputs, truncate=False, options={"num_ctx": 10})
    assert 400 <= info.value.status_code < 500
    assert has_any(info.value.error, ["context length", "too large", "exceed_context_size"]), info.value.error


# --- integration/tools_test.go, tools_routes_test.go --------------------------------------


def test_tools(oc):
    """upstream: integration/tools_test.go runAPIToolCallingModel (TestTools/tools)"""
    tool = {"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather for a location",
        "parameters": {"type": "object", "required": ["location"], "properties": {
            "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"}}}}}
    calls = []
    for part in oc.chat(model=MODEL_ID, messages=[{"role": "user", "content": "Call get_weather with location set to San Francisco."}],
                        tools=[tool], stream=True, options={"temperature": 0, "num_predict": 60}):
        calls += part.message.tool_calls or []
    assert calls, "expected at least one tool call"
    assert calls[-1].function.name == "get_weather"
    assert "location" in calls[-1].function.arguments


def test_tools_routes_ollama(http):
    """upstream: integration/tools_routes_test.go runOllamaToolRoute (TestTools/tools-routes/ollama):
    an earlier call (with its id) and its result in the history, think false, a new call asked for."""
    params = {"type": "object", "required": ["location"], "properties": {"location": {"type": "string"}}}
    tool = {"type": "function", "function": {"name": "get_weather", "description": "Get the current weather for a location",
                                             "parameters": params}}
    messages = [
        {"role": "system", "content": "When the user asks for weather, call get_weather. Return only the tool call and do not answer in text."},
        {"role": "user", "content": "Call get_weather for Paris."},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_previous", "function": {"name": "get_weather", "arguments": {"location": "Paris"}}}]},
        {"role": "tool", "content": '{"condition":"sunny"}', "tool_name": "get_weather", "tool_call_id": "call_previous"},
        {"role": "user", "content": "Now call get_weather with location exactly Boston. Return only the tool call."},
    ]
    body = {"model": MODEL_ID, "messages": messages, "tools": [tool], "think": False,
            "options": {"temperature": 0, "num_ctx": 16384, "num_predict": 64}}
    with http.stream("POST", "/api/chat", json=body) as r:
        assert r.status_code == 200
        lines = [json.loads(line) for line in r.iter_lines() if line]
    content = "".join(line["message"].get("content", "") for line in lines)
    for tag in ("<tool_call>", "</tool_call>", "<think>", "</think>"):
        assert tag not in content
    calls = [c for line in lines for c in (line["message"].get("tool_calls") or [])]
    assert calls, content
    assert calls[-1]["function"]["name"] == "get_weather"
    assert calls[-1]["function"]["arguments"]["location"].lower() == "boston"


# --- integration/create_test.go -----------------------------------------------------------


def test_create_gguf(bare):
    """upstream: integration/create_test.go runCreateGGUF (TestCreate/create-gguf): a model made of
    a GGUF file shows, writes coherent words, and is deleted. Upstream drives `ollama create -f
    Modelfile` (FROM a path): the CLI uploads the blob and sends `files`, which this does."""
    c = client(bare.base)
    make(bare.base, "test-llama32-gguf", bare.digest)
    assert c.show("test-llama32-gguf").details.format == "gguf"
    text = "".join(p.response for p in c.generate(model="test-llama32-gguf", stream=True,
                                                  prompt="Write a short sentence about the weather.",
                                                  options={"num_predict": 20, "temperature": 0}))
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    assert len(text.split()) >= 3 and letters / max(len(text), 1) > 0.7, text
    assert c.delete("test-llama32-gguf").status == "success"
    assert "test-llama32-gguf:latest" not in names(bare.base)
