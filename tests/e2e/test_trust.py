"""Safe defaults end to end: CORS for local pages only, the Host check against DNS rebinding,
API keys and admin keys on every API, and a header-only GGUF refused at import.
"""
import os
import struct
import subprocess
import time

import httpx
import ollama
import openai
import pytest

from conftest import MODEL_ID, _extra_server, _required_env

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}


def preflight(base, path, origin):
    return httpx.options(f"{base}{path}", headers={"Origin": origin, **PREFLIGHT}, timeout=30)


# --- CORS (the default server) ---

@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions", "/v1/models", "/ui/api/v1/conversations"])
def test_local_pages_may_call(server, path):
    r = preflight(server, path, "http://localhost:3000")
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "content-type" in r.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("origin", ["https://evil.example", "http://localhost.evil.example", "null"])
def test_other_pages_get_no_cors_headers_and_are_refused(server, origin):
    r = preflight(server, "/api/chat", origin)
    assert "access-control-allow-origin" not in r.headers
    r = httpx.get(f"{server}/api/tags", headers={"Origin": origin}, timeout=30)
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    assert "not allowed" in r.json()["error"]
    # A "simple" request a page sends without a preflight does not run either.
    r = httpx.post(f"{server}/api/generate", content='{"model": "%s", "keep_alive": 0}' % MODEL_ID,
                   headers={"Origin": origin, "Content-Type": "text/plain"}, timeout=30)
    assert r.status_code == 403
    r = httpx.post(f"{server}/v1/chat/completions", content="x=1",
                   headers={"Origin": origin, "Content-Type": "application/x-www-form-urlencoded"}, timeout=30)
    assert r.status_code == 403 and r.json()["error"]["code"] == "origin_not_allowed"


def test_the_servers_own_origin_is_allowed(server):
    port = server.rsplit(":", 1)[1]
    r = httpx.get(f"{server}/api/tags", headers={"Origin": f"http://localhost:{port}"}, timeout=30)
    assert r.status_code == 200


def test_a_real_request_from_a_local_page_carries_the_header(server):
    for origin in ["http://127.0.0.1:5173", "chrome-extension://abcdefgh", "tauri://localhost"]:
        r = httpx.get(f"{server}/api/tags", headers={"Origin": origin}, timeout=30)
        assert r.headers.get("access-control-allow-origin") == origin, origin


# --- DNS rebinding (the default server listens on 127.0.0.1) ---

def test_a_foreign_host_is_refused_on_loopback(server):
    r = httpx.get(f"{server}/v1/models", headers={"Host": "evil.example"}, timeout=30)
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "host_not_allowed"
    r = httpx.get(f"{server}/api/tags", headers={"Host": "evil.example:11434"}, timeout=30)
    assert r.status_code == 403
    assert r.headers["server"].startswith("Minerva/")
    assert "not allowed" in r.json()["error"]
    port = server.rsplit(":", 1)[1]
    for host in [f"localhost:{port}", f"127.0.0.1:{port}", "localhost"]:
        assert httpx.get(f"{server}/api/tags", headers={"Host": host}, timeout=30).status_code == 200


# --- keys ---

@pytest.fixture(scope="module")
def keyed():
    yield from _extra_server("keyed", ["--api-key", "k1", "--admin-key", "root",
                                       "--cors-origin", "https://chat.example.com",
                                       "--allowed-host", "minerva.lan"])


def test_no_key_is_a_401_in_each_apis_shape(keyed):
    r = httpx.get(f"{keyed}/v1/models", timeout=30)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "invalid_api_key"
    assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.get(f"{keyed}/api/tags", timeout=30)
    assert r.status_code == 401
    assert "API key" in r.json()["error"]
    r = httpx.get(f"{keyed}/v1/models", headers={"Authorization": "Bearer wrong"}, timeout=30)
    assert r.status_code == 401 and "not valid" in r.json()["error"]["message"]
    r = httpx.get(f"{keyed}/ui/api/v1/conversations", timeout=30)
    assert r.status_code == 401
    # Refusals too say what answers (the desktop app finds a Minerva server on its port so).
    assert r.headers["server"].startswith("Minerva/")


def test_open_paths(keyed):
    assert httpx.get(f"{keyed}/health", timeout=30).status_code == 200
    # The API's description is not a secret: tools read it before they have a key.
    r = httpx.get(f"{keyed}/openapi.json", timeout=30)
    assert r.status_code == 200 and "/v1/chat/completions" in r.json()["paths"]
    r = httpx.get(f"{keyed}/", headers={"Accept": "text/html"}, timeout=30)
    assert r.status_code == 200
    # A browser's preflight carries no key: it is answered.
    r = preflight(keyed, "/v1/chat/completions", "http://localhost:3000")
    assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://localhost:3000"
    # A refusal to an allowed page still carries the CORS header, so the page can read it.
    r = httpx.get(f"{keyed}/v1/models", headers={"Origin": "https://chat.example.com"}, timeout=30)
    assert r.status_code == 401 and r.headers["access-control-allow-origin"] == "https://chat.example.com"


def test_keys_open_the_apis_to_the_official_clients(keyed):
    oc = openai.OpenAI(base_url=f"{keyed}/v1", api_key="k1", max_retries=0, timeout=120)
    r = oc.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "Hi"}],
                                   max_tokens=3, temperature=0)
    assert r.choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{keyed}/v1", api_key="nope", max_retries=0).models.list()
    ol = ollama.Client(host=keyed, headers={"Authorization": "Bearer k1"}, timeout=120)
    assert [m.model for m in ol.list().models]
    # Anthropic's header, and its error shape without a key.
    r = httpx.get(f"{keyed}/v1/models", headers={"x-api-key": "k1"}, timeout=30)
    assert r.status_code == 200
    import anthropic
    m = anthropic.Anthropic(base_url=keyed, api_key="k1", max_retries=0, timeout=120).messages.create(
        model=MODEL_ID, max_tokens=3, messages=[{"role": "user", "content": "Hi"}])
    assert m.content
    r = httpx.post(f"{keyed}/v1/messages", json={"model": MODEL_ID, "max_tokens": 3, "messages": []}, timeout=30)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_admin_routes_need_the_admin_key(keyed):
    client = {"Authorization": "Bearer k1"}
    admin = {"Authorization": "Bearer root"}
    for method, path, body in [("POST", "/api/pull", {"model": "nope:1"}),
                               ("DELETE", "/api/delete", {"model": "nope:1"}),
                               ("POST", "/api/copy", {"source": "a", "destination": "b"}),
                               ("POST", "/api/create", {"model": "x", "from": "a"}),
                               ("POST", "/api/blobs/sha256:" + "0" * 64, {"not": "the blob"}),
                               ("HEAD", "/api/blobs/sha256:" + "0" * 64, None)]:
        r = httpx.request(method, f"{keyed}{path}", json=body, headers=client, timeout=30)
        assert r.status_code == 403, (path, r.text)
        assert method == "HEAD" or "admin key" in r.json()["error"]
        r = httpx.request(method, f"{keyed}{path}", json=body, headers=admin, timeout=30)
        assert r.status_code not in (401, 403), (path, r.text)
    # Unloading with keep_alive 0 and no prompt changes the server too.
    unload = {"model": MODEL_ID, "keep_alive": 0}
    r = httpx.post(f"{keyed}/api/generate", json=unload, headers=client, timeout=30)
    assert r.status_code == 403
    r = httpx.post(f"{keyed}/api/chat", json={**unload, "messages": []}, headers=admin, timeout=60)
    assert r.status_code == 200 and r.json()["done_reason"] == "unload"
    # The admin key is an API key too.
    assert httpx.get(f"{keyed}/api/tags", headers=admin, timeout=30).status_code == 200


def test_a_plain_key_cannot_unload_with_a_short_keep_alive(keyed):
    """keep_alive "1ns" would unload the model right after the request, as 0 does: with a plain
    key a keep_alive shorter than the server's default is left out; with the admin key it holds."""
    client = ollama.Client(host=keyed, headers={"Authorization": "Bearer k1"}, timeout=120)
    admin = ollama.Client(host=keyed, headers={"Authorization": "Bearer root"}, timeout=120)
    for keep_alive in ["1ns", 0.001, "1s"]:
        client.generate(model=MODEL_ID, prompt="Hi", keep_alive=keep_alive, options={"num_predict": 1})
        time.sleep(2)
        assert [m.model for m in client.ps().models] == [MODEL_ID], keep_alive
    # A longer one is the client's to ask.
    client.generate(model=MODEL_ID, prompt="Hi", keep_alive="1h", options={"num_predict": 1})
    expires = client.ps().models[0].expires_at
    assert expires.timestamp() - time.time() > 3000
    admin.generate(model=MODEL_ID, prompt="Hi", keep_alive="1ns", options={"num_predict": 1})
    deadline = time.time() + 10
    while client.ps().models and time.time() < deadline:
        time.sleep(0.2)
    assert client.ps().models == []


def test_listed_origins_and_hosts(keyed):
    r = preflight(keyed, "/api/chat", "https://chat.example.com")
    assert r.headers.get("access-control-allow-origin") == "https://chat.example.com"
    r = httpx.get(f"{keyed}/api/tags", headers={"Host": "minerva.lan:11434", "Authorization": "Bearer k1"},
                  timeout=30)
    assert r.status_code == 200
    r = httpx.get(f"{keyed}/api/tags", headers={"Host": "other.lan", "Authorization": "Bearer k1"}, timeout=30)
    assert r.status_code == 403
    # The UI reached by a listed name sends its own origin.
    r = httpx.get(f"{keyed}/api/tags", headers={"Host": "minerva.lan:8080", "Origin": "http://minerva.lan:8080",
                                                 "Authorization": "Bearer k1"}, timeout=30)
    assert r.status_code == 200


def test_beyond_loopback_without_a_key_warns(tmp_path):
    """Bound to every address: no Host check, and a loud warning when no key is set."""
    log = tmp_path / "open.log"
    proc = subprocess.Popen([_required_env("MINERVA_BIN"), "serve", "--model", _required_env("MINERVA_QWEN_GGUF"),
                             "--host", "0.0.0.0", "--port", "0", "--ctx-size", "512"],
                            stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "MINERVA_MODELS": str(tmp_path / "store")})
    try:
        deadline = time.time() + 120
        while "no API key" not in log.read_text() and time.time() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.2)
        text = log.read_text()
        assert "WARNING" in text and "no API key" in text, text
        port = text.split("listening on http://")[1].split()[0].rsplit(":", 1)[1].rstrip(")")
        r = httpx.get(f"http://127.0.0.1:{port}/api/tags", headers={"Host": "evil.example"}, timeout=30)
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_an_empty_key_refuses_to_start(tmp_path):
    """`--api-key "$UNSET"` must not leave the server open: an empty key stops it at start."""
    for args, env in [(["--api-key", ""], {}), (["--api-key", "k", "--admin-key", " "], {}),
                      ([], {"MINERVA_ADMIN_KEY": ","}), ([], {"MINERVA_API_KEY": "k1,,k2"})]:
        r = subprocess.run([_required_env("MINERVA_BIN"), "serve", "--no-default-model", "--port", "0", *args],
                           env={**os.environ, "MINERVA_MODELS": str(tmp_path / "store"), **env},
                           capture_output=True, text=True, timeout=60)
        assert r.returncode != 0, (args, env, r.stderr)
        assert "was given an empty key" in r.stderr, r.stderr


def test_minerva_ps_sends_the_key(keyed):
    port = keyed.rsplit(":", 1)[1]
    run = lambda *a, **env: subprocess.run([_required_env("MINERVA_BIN"), "ps", "--port", port, *a],  # noqa: E731
                                           env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert run().returncode != 0
    assert run("--api-key", "k1").returncode == 0
    assert run(MINERVA_API_KEY="k1").returncode == 0


# --- hostile files ---

def test_a_header_only_gguf_is_not_a_model(tmp_path):
    """`GGUF`, version 3, zero tensors, zero metadata, then 64 KiB of zeros."""
    path = tmp_path / "header-only.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 0) + b"\0" * 65536)
    env = {**os.environ, "MINERVA_MODELS": str(tmp_path / "store")}
    r = subprocess.run([_required_env("MINERVA_BIN"), "import", str(path), "--name", "empty"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode != 0
    assert "no tensors" in r.stderr, r.stderr
    r = subprocess.run([_required_env("MINERVA_BIN"), "list"], capture_output=True, text=True, env=env, timeout=60)
    assert "empty" not in r.stdout
