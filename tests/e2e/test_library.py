"""`minerva serve` over a model library, through the official `ollama` client: models listed,
pulled (from tests/e2e/hub.py, with an interruption), loaded on demand, evicted for memory,
unloaded by keep_alive, copied and deleted; and the model states on both APIs.

Every server here has a store of its own (MINERVA_MODELS in a temporary directory), filled with
`minerva import` (hard links to the test models, so nothing is copied).
"""
import os
import shutil
import subprocess
import threading
import time

import httpx
import ollama
import pytest

import conftest
from test_store import NAME as PULLED, REPO, Hub

QWEN = "qwen:test"
GEMMA = "gemma:test"
SHORT = [{"role": "user", "content": "Say hi."}]


def minerva(store, *args, env=None):
    result = subprocess.run(
        [os.environ["MINERVA_BIN"], *args],
        env={**os.environ, "MINERVA_MODELS": str(store), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = tmp_path_factory.mktemp("library-store")
    minerva(store, "import", os.environ["MINERVA_QWEN_GGUF"], "--name", QWEN)
    minerva(store, "import", os.environ["MINERVA_GEMMA_GGUF"], "--name", GEMMA)
    return store


def serve(store, name, *args, env=None):
    """A server over a copy-free clone of `store` (its manifests copied, blobs hard-linked), or
    over an empty store of its own when `store` is None."""
    own = None
    if store is not None:
        own = store.parent / f"{store.name}-{name}"
        if not own.exists():
            shutil.copytree(store, own, copy_function=os.link)
        own = str(own)
    return conftest._start_server(list(args), os.path.join(conftest.LOG_DIR, f"minerva-e2e-{name}-{{port}}.log"),
                                  model=False, store=own, env=env)


@pytest.fixture(scope="module")
def roomy(store):
    proc, base, log = serve(store, "roomy")
    yield base
    conftest._stop_server(proc, log)


@pytest.fixture(scope="module")
def tight(store):
    """A memory budget that holds Qwen or Gemma, not both."""
    proc, base, log = serve(store, "tight", "--max-memory", "900M")
    yield base
    conftest._stop_server(proc, log)


def client(base):
    return ollama.Client(host=base, timeout=300)


def loaded(base):
    return {m["name"]: m for m in httpx.get(f"{base}/api/ps", timeout=30).json()["models"]}


def states(base):
    return {m["id"]: m["state"] for m in httpx.get(f"{base}/v1/models", timeout=30).json()["data"]}


def wait_for(predicate, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_library_is_listed_and_nothing_is_loaded_before_use(roomy):
    oc = client(roomy)
    listed = oc.list().models
    names = [m.model for m in listed]
    assert names == [GEMMA, QWEN], "the most recently added first, as Ollama lists"
    assert listed[0].modified_at >= listed[1].modified_at
    assert states(roomy) == {GEMMA: "unloaded", QWEN: "unloaded"}
    models = httpx.get(f"{roomy}/v1/models").json()["data"]
    assert {m["backend"] for m in models} == {"llama.cpp"}
    shown = oc.show(GEMMA)
    assert shown.details.family == "gemma3" and shown.details.quantization_level == "Q4_K_M"
    assert loaded(roomy) == {}, "show must not load a model"


def test_two_models_served_alternately(roomy):
    oc = client(roomy)
    replies = []
    for model in [QWEN, GEMMA, QWEN, GEMMA]:
        r = oc.chat(model=model, messages=SHORT, options={"temperature": 0, "num_predict": 8})
        assert r.done and r.eval_count > 0
        replies.append((model, r.message.content))
    # Greedy replies of one model do not change when the other ran in between.
    assert replies[0] == replies[2] and replies[1] == replies[3]
    running = loaded(roomy)
    assert set(running) == {QWEN, GEMMA}
    for m in running.values():
        assert m["state"] == "loaded" and m["size"] > 100 * 2**20
    assert states(roomy) == {GEMMA: "loaded", QWEN: "loaded"}
    # `minerva ps` asks the running server, as `ollama ps` does.
    out = subprocess.run([os.environ["MINERVA_BIN"], "ps", "--port", roomy.rsplit(":", 1)[1]],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ID", "SIZE", "STATE", "PID", "BACKEND", "CPU", "UNTIL"]
    assert {line.split()[0] for line in lines[1:]} == {QWEN, GEMMA}
    # The llama.cpp CPU variant each worker runs, as /api/ps says it.
    for line in lines[1:]:
        variant = running[line.split()[0]]["cpu_variant"]
        assert variant and f" {variant} " in line, (variant, line)
    assert all("loaded" in line and "minutes from now" in line for line in lines[1:]), out.stdout


def test_keep_alive_zero_unloads_after_the_request(roomy):
    oc = client(roomy)
    oc.generate(model=GEMMA, prompt="hi", options={"num_predict": 2})
    assert GEMMA in loaded(roomy)
    r = oc.generate(model=GEMMA, prompt="hi", options={"num_predict": 2}, keep_alive=0)
    assert r.done
    assert wait_for(lambda: GEMMA not in loaded(roomy), 5)
    assert states(roomy)[GEMMA] == "unloaded"


def test_keep_alive_duration_sets_expiry_and_unloads(roomy):
    oc = client(roomy)
    oc.generate(model=GEMMA, prompt="hi", options={"num_predict": 2}, keep_alive="2s")
    ps = oc.ps().models
    gemma = next(m for m in ps if m.model == GEMMA)
    left = gemma.expires_at.timestamp() - time.time()
    assert 0 < left <= 2.5, left
    assert wait_for(lambda: GEMMA not in loaded(roomy), 8)
    # Negative keeps it loaded: the expiry is far away.
    oc.generate(model=GEMMA, prompt="hi", options={"num_predict": 2}, keep_alive=-1)
    gemma = next(m for m in oc.ps().models if m.model == GEMMA)
    assert gemma.expires_at.timestamp() - time.time() > 365 * 24 * 3600


def test_empty_prompt_loads_and_keep_alive_zero_unloads(roomy):
    oc = client(roomy)
    r = oc.generate(model=GEMMA, prompt="")
    assert r.done_reason == "load"
    assert GEMMA in loaded(roomy)
    r = oc.generate(model=GEMMA, prompt="", keep_alive=0)
    assert r.done_reason == "unload"
    assert wait_for(lambda: GEMMA not in loaded(roomy), 5)


def test_budget_evicts_the_idle_model_and_reloads_on_demand(tight):
    oc = client(tight)
    oc.chat(model=QWEN, messages=SHORT, options={"num_predict": 4})
    assert set(loaded(tight)) == {QWEN}
    oc.chat(model=GEMMA, messages=SHORT, options={"num_predict": 4})
    assert set(loaded(tight)) == {GEMMA}, "Qwen (idle, least recently used) should have made room"
    oc.chat(model=QWEN, messages=SHORT, options={"num_predict": 4})
    assert set(loaded(tight)) == {QWEN}


def test_a_model_in_use_is_never_evicted(tight):
    oc = client(tight)
    oc.generate(model=QWEN, prompt="", keep_alive="5m")
    events = {}

    def long_stream():
        parts = list(client(tight).generate(model=QWEN, prompt="Count from 1 to 100.", stream=True,
                                             options={"num_predict": 60, "temperature": 0}))
        events["qwen_done"] = time.time()
        events["qwen_parts"] = parts

    worker = threading.Thread(target=long_stream)
    worker.start()
    assert wait_for(lambda: any(s["state"] != "idle" for s in httpx.get(f"{tight}/slots").json()["slots"]), 30)
    r = oc.generate(model=GEMMA, prompt="hi", options={"num_predict": 2})
    events["gemma_done"] = time.time()
    worker.join(timeout=300)
    parts = events["qwen_parts"]
    assert parts[-1].done and parts[-1].eval_count > 5, "the stream in use ended cleanly"
    assert r.done
    # Gemma had to wait for Qwen's stream to end before Qwen could be unloaded.
    assert events["gemma_done"] >= events["qwen_done"]
    assert set(loaded(tight)) == {GEMMA}


def test_pull_over_the_api_resumes_and_the_model_serves(store, tmp_path):
    hub = Hub(tmp_path, "--fail-after", str(100 * 2**20))
    # An empty store: a store that already holds the blob (Gemma) would skip the download.
    proc, base, log = serve(None, "pull", "--model", os.environ["MINERVA_GEMMA_GGUF"],
                            env={"HF_ENDPOINT": hub.base})
    try:
        oc = client(base)
        statuses = list(oc.pull(f"hf.co/{REPO}:Q4_K_M", stream=True))
        assert statuses[0].status == "pulling manifest"
        assert statuses[-1].status == "success"
        assert any(s.completed and s.total and s.completed == s.total for s in statuses)
        # The bytes come from the CDN-like URL the resolve URL redirects to.
        ranged = [r for r in hub.requests() if r.get("range") and r["status"] == 206]
        assert len(ranged) == 1, "the dropped download should have been resumed with one Range request"
        have = int(ranged[0]["range"].split("=")[1].rstrip("-"))
        assert have > 0 and ranged[0]["bytes"] == 253_113_024 - have, "the resume fetched only the rest"
        assert PULLED in [m.model for m in oc.list().models]
        r = oc.generate(model=PULLED, prompt="hi", options={"num_predict": 3})
        assert r.done and r.eval_count > 0
        # copy, then delete both names: the copy serves too, and the delete unloads.
        oc.copy(PULLED, "mine:copy")
        assert "mine:copy" in [m.model for m in oc.list().models]
        assert oc.delete(PULLED).status == "success"
        assert PULLED not in [m.model for m in oc.list().models]
        assert PULLED not in loaded(base)
        r = oc.generate(model="mine:copy", prompt="hi", options={"num_predict": 2})
        assert r.done
        oc.delete("mine:copy")
        with pytest.raises(ollama.ResponseError) as info:
            oc.delete("mine:copy")
        assert info.value.status_code == 404
    finally:
        conftest._stop_server(proc, log)
        hub.stop()


def test_pull_of_a_missing_repo_is_an_error_line(store, tmp_path):
    hub = Hub(tmp_path)
    proc, base, log = serve(store, "pull-missing", env={"HF_ENDPOINT": hub.base})
    try:
        with pytest.raises(ollama.ResponseError) as info:
            list(client(base).pull("hf.co/nobody/nothing-GGUF", stream=True))
        said = str(info.value)
        assert "cannot pull hf.co/nobody/nothing-GGUF: not found" in said, said
        assert "try pulling it first" not in said
        with pytest.raises(ollama.ResponseError) as info:
            client(base).pull("hf.co/nobody/nothing-GGUF", stream=False)
        assert info.value.status_code == 404 and "cannot pull" in str(info.value)
        with pytest.raises(ollama.ResponseError):
            client(base).pull("../../etc/passwd")
        # A download that fails (nothing listens there) is the hub's or the network's failure.
        r = httpx.post(f"{base}/api/pull", json={"model": "http://127.0.0.1:9/x.gguf", "stream": False}, timeout=120)
        assert r.status_code in (400, 502), r.text
        assert "failed while serving" not in r.json()["error"]
        assert client(base).list().models is not None
    finally:
        conftest._stop_server(proc, log)
        hub.stop()


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "sha256:abc", "a/../../b"])
def test_hostile_names_are_refused(roomy, name):
    with pytest.raises(ollama.ResponseError) as info:
        client(roomy).chat(model=name, messages=SHORT)
    assert info.value.status_code in (400, 404)
    with pytest.raises(ollama.ResponseError):
        client(roomy).copy(QWEN, name)
    assert httpx.get(f"{roomy}/health").status_code == 200


@pytest.fixture(scope="module")
def crashable(store):
    proc, base, log = serve(store, "crash")
    yield proc, base
    conftest._stop_server(proc, log)


def test_worker_killed_mid_stream_fails_that_stream_and_the_model_reloads(crashable):
    import signal

    import openai

    proc, base = crashable
    oc = client(base)
    for attempt, api in enumerate(["ollama", "openai"]):
        oc.generate(model=QWEN, prompt="", keep_alive="5m")
        pid = loaded(base)[QWEN]["pid"]
        assert pid and pid != proc.pid, "the model runs in a worker process of its own"
        if api == "ollama":
            stream = oc.generate(model=QWEN, prompt="Count from 1 to 200, one number a line.", stream=True,
                                 options={"num_predict": 400, "temperature": 0})
            error = ollama.ResponseError
        else:
            oa = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=120)
            stream = oa.chat.completions.create(
                model=QWEN, messages=[{"role": "user", "content": "Count from 1 to 200, one number a line."}],
                stream=True, max_tokens=400, temperature=0)
            error = openai.APIError
        received = 0
        with pytest.raises(error) as info:
            for _ in stream:
                received += 1
                if received == 3:
                    os.kill(pid, signal.SIGKILL)
        assert received >= 3
        assert "signal 9" in str(info.value) or "worker" in str(info.value)
        # The server goes on; the model is marked failed (or already forgotten) ...
        assert httpx.get(f"{base}/health").status_code == 200
        assert wait_for(lambda: states(base)[QWEN] in ("failed", "unloaded"), 5), states(base)
        # ... and the next request loads it again, in a new worker.
        r = oc.chat(model=QWEN, messages=SHORT, options={"num_predict": 4})
        assert r.done and r.eval_count > 0
        new_pid = loaded(base)[QWEN]["pid"]
        assert new_pid != pid
    # Gemma, in its own worker, was never touched by any of this.
    assert client(base).generate(model=GEMMA, prompt="hi", options={"num_predict": 2}).done


def test_a_load_whose_client_went_away_leaves_no_stuck_state(store):
    proc, base, log = serve(store, "abandon")
    try:
        # The client gives up long before the model can load.
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{base}/api/generate", json={"model": GEMMA, "prompt": "hi"}, timeout=0.05)
        # The model is not left `loading` forever: once the abandoned load is over it is unloaded.
        assert wait_for(lambda: states(base)[GEMMA] == "unloaded", 30), states(base)
        r = client(base).generate(model=GEMMA, prompt="hi", options={"num_predict": 2})
        assert r.done
        assert states(base)[GEMMA] == "loaded"
    finally:
        conftest._stop_server(proc, log)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the client's note on the model id
def test_a_model_served_by_path_copies_into_the_library_as_a_clients_model_id(store):
    """`/api/copy` of a `--model FILE` model puts its file in the library under the new name, so
    a client that sends its own model id (Claude Code's `claude-sonnet-4-5`) is answered by the
    local model; `/api/delete` of the served file is a 400 that says why."""
    import anthropic

    proc, base, log = serve(None, "alias", "--model", os.environ["MINERVA_GEMMA_GGUF"])
    try:
        oc = client(base)
        served = oc.list().models[0].model
        oc.copy(served, "claude-sonnet-4-5")
        listed = {m["id"]: m["meta"]["in_library"] for m in httpx.get(f"{base}/v1/models").json()["data"]}
        assert listed == {served: False, "claude-sonnet-4-5:latest": True}
        digests = {m.model: m.digest for m in oc.list().models}
        assert digests["claude-sonnet-4-5:latest"] == digests[served] or not digests[served]
        # Listed as an alias of the served model once that file's digest is known (hashed after start).
        deadline = time.time() + 60
        while True:
            metas = {m["id"]: m["meta"] for m in httpx.get(f"{base}/v1/models").json()["data"]}
            if metas[served]["digest"] or time.time() > deadline:
                break
            time.sleep(0.5)
        assert metas["claude-sonnet-4-5:latest"].get("alias_of") == served
        assert "alias_of" not in metas[served]
        ac = anthropic.Anthropic(base_url=base, api_key="x", max_retries=0, timeout=120)
        m = ac.messages.create(model="claude-sonnet-4-5", max_tokens=5,
                               messages=[{"role": "user", "content": "Hi"}])
        assert m.model == "claude-sonnet-4-5" and m.usage.output_tokens > 0
        with pytest.raises(ollama.ResponseError) as info:
            oc.delete(served)
        assert info.value.status_code == 400 and "command line" in str(info.value)
        assert oc.delete("claude-sonnet-4-5").status == "success"
        assert [m.model for m in oc.list().models] == [served]
    finally:
        conftest._stop_server(proc, log)


def test_api_pulls_of_urls_reach_only_public_https(store, tmp_path):
    """Over the API a plain URL must be https:// on a public address (against server-side request
    forgery: a client making the server fetch from its own network); --pull-private-urls lifts
    it, `minerva pull` on the machine is not limited, and hub names go to the configured hub."""
    from test_store import FILE
    hub = Hub(tmp_path)
    url = f"{hub.base}/{REPO}/resolve/main/{FILE}"
    proc, base, log = serve(store, "pull-guarded", env={"HF_ENDPOINT": hub.base})
    try:
        for source, said in [(url, "not an https:// URL"),
                             ("https://127.0.0.1:9/x.gguf", "127.0.0.1 is not a public address"),
                             ("https://localhost:9/x.gguf", "localhost is not a public address"),
                             ("https://[::1]:9/x.gguf", "is not a public address"),
                             ("https://169.254.169.254/latest/x.gguf", "169.254.169.254 is not a public address"),
                             ("https://10.0.0.1/x.gguf", "10.0.0.1 is not a public address")]:
            started = time.monotonic()
            r = httpx.post(f"{base}/api/pull", json={"model": source, "stream": False}, timeout=120)
            assert r.status_code == 400, (source, r.text)
            assert said in r.json()["error"] and "--pull-private-urls" in r.json()["error"], r.text
            assert time.monotonic() - started < 10, "a refusal is not retried"
            # Streamed, the refusal comes first: before any line, with its status.
            with pytest.raises(ollama.ResponseError) as info:
                list(client(base).pull(source, stream=True))
            assert said in str(info.value) and info.value.status_code == 400
        assert not [e for e in hub.requests() if e["path"].endswith(".gguf")], "nothing was fetched"
        names = [m.model for m in client(base).list().models]
        assert sorted(names) == sorted([QWEN, GEMMA])
        # A hub name goes to the hub the operator set, wherever it is.
        assert client(base).pull(f"hf.co/{REPO}:Q4_K_M", stream=False).status == "success"
    finally:
        conftest._stop_server(proc, log)
    proc, base, log = serve(store, "pull-private", "--pull-private-urls", env={"HF_ENDPOINT": hub.base})
    try:
        assert client(base).pull(url, stream=False).status == "success"
        assert "gemma-3-270m-q4_k_m:latest" in [m.model for m in client(base).list().models]
        # `minerva pull` of the same URL on the machine itself.
        own = tmp_path / "cli-store"
        minerva(own, "pull", url, "--name", "viacli:latest")
        assert "viacli:latest" in minerva(own, "list")
    finally:
        conftest._stop_server(proc, log)
        hub.stop()


def test_a_huge_keep_alive_is_forever_and_ps_still_answers(roomy):
    """A keep_alive past what a clock can say keeps the model loaded; /api/ps answers at once."""
    for keep_alive in [9e18, "2500000000000000h", 1e16]:
        client(roomy).generate(model=GEMMA, prompt="Hi", keep_alive=keep_alive, options={"num_predict": 1})
        started = time.monotonic()
        r = httpx.get(f"{roomy}/api/ps", timeout=10)
        assert r.status_code == 200 and time.monotonic() - started < 2
        expires = loaded(roomy)[GEMMA]["expires_at"]
        assert expires[:4] >= "2200", expires
    assert httpx.get(f"{roomy}/health", timeout=10).status_code == 200
    client(roomy).generate(model=GEMMA, keep_alive=0)
