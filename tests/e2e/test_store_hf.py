"""Hugging Face model directories in the store, end to end: `minerva import DIR`, `minerva pull
hf.co/OWNER/REPO` of a safetensors repository from the hub stand-in (tests/e2e/hub.py), the
backend shown by `minerva list`/`show`, `minerva config --backend`, and the stored model served
by MLX through the library.

The model is the MLX test fixture (MINERVA_QWEN_HF: the Qwen GGUF converted to bf16
safetensors by scripts/fixtures/gguf_to_hf.py).
"""
import json
import os

import openai
import pytest

import conftest
import hub as hub_standin
from test_store import Hub, env, hubs, minerva, store_files  # noqa: F401 (fixtures)

HF_REPO = "minerva-test/Qwen2.5-Coder-0.5B-Instruct"
HF_NAME = "hf.co/minerva-test/qwen2.5-coder-0.5b-instruct:latest"
MODEL_FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json"]


def _hf_dir():
    path = os.environ.get("MINERVA_QWEN_HF")
    if not path or not os.path.isfile(os.path.join(path, "config.json")):
        pytest.fail("MINERVA_QWEN_HF must be the converted HF model directory (run scripts/test.sh)", pytrace=False)
    return path


_sha256 = hub_standin.Hub._sha256


def _rows(env):
    """`minerva list` as {name: backend}."""
    r = minerva(env, "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "ID", "SIZE", "MODIFIED", "BACKEND", "ALIAS", "OF"]
    at = lines[0].index("BACKEND")
    return {line.split()[0]: line[at:].split()[0] for line in lines[1:]}


def test_import_list_show_config_rm(env):
    src = _hf_dir()
    r = minerva(env, "import", src, "--name", "qwen-hf")
    assert r.returncode == 0, r.stderr
    r = minerva(env, "import", os.environ["MINERVA_QWEN_GGUF"], "--name", "qwen-gguf")
    assert r.returncode == 0, r.stderr
    assert _rows(env) == {"qwen-gguf:latest": "llama.cpp", "qwen-hf:latest": "mlx"}
    # A second name for the same files is listed as an alias of the first.
    assert minerva(env, "cp", "qwen-gguf", "claude-sonnet-4-5").returncode == 0
    lines = minerva(env, "list").stdout.splitlines()
    alias = next(line for line in lines if line.startswith("claude-sonnet-4-5:latest"))
    assert alias[lines[0].index("ALIAS OF"):].strip() == "qwen-gguf:latest", lines
    assert minerva(env, "rm", "claude-sonnet-4-5").returncode == 0

    show = minerva(env, "show", "qwen-hf").stdout
    assert "format          safetensors" in show and "backend         mlx (by format)" in show, show
    assert "quantization    BF16" in show and "architecture    qwen2" in show, show
    # Every model file is a blob with its own sha256, and the snapshot links to them.
    files = store_files(env)
    snapshot = [f for f in files if f.startswith("snapshots/")]
    assert sorted(os.path.basename(f) for f in snapshot) == MODEL_FILES
    blob = f"blobs/sha256-{_sha256(os.path.join(src, 'model.safetensors'))}"
    assert blob in files

    # A backend that cannot load the format is refused, naming what would.
    r = minerva(env, "config", "qwen-hf", "--backend", "llama.cpp")
    assert r.returncode != 0
    assert "llama.cpp backend cannot load 'safetensors' models" in r.stderr and "mlx does" in r.stderr, r.stderr
    r = minerva(env, "config", "qwen-gguf", "--backend", "mlx")
    assert r.returncode != 0 and "mlx backend cannot load 'gguf' models" in r.stderr, r.stderr
    r = minerva(env, "config", "qwen-gguf", "--backend", "candle")
    assert r.returncode != 0 and "unknown backend 'candle'" in r.stderr, r.stderr
    r = minerva(env, "import", src, "--name", "other", "--backend", "llama.cpp")
    assert r.returncode != 0 and "cannot load 'safetensors'" in r.stderr, r.stderr
    # Choosing the format's own backend is kept and shown.
    r = minerva(env, "config", "qwen-hf", "--backend", "mlx")
    assert r.returncode == 0 and "backend\tmlx (chosen)" in r.stdout, (r.stdout, r.stderr)
    assert "backend         mlx (chosen)" in minerva(env, "show", "qwen-hf").stdout
    r = minerva(env, "config", "qwen-hf", "--backend", "auto")
    assert "backend\tmlx (by format)" in r.stdout

    for name in ["qwen-hf", "qwen-gguf"]:
        assert minerva(env, "rm", name).returncode == 0
    assert store_files(env) == []


def _hub_repo(tmp_path):
    """The HF fixture as a hub repository, beside files a pull must leave alone."""
    src = _hf_dir()
    repo = tmp_path / "hub-root" / HF_REPO
    repo.mkdir(parents=True)
    for f in MODEL_FILES:
        try:
            os.link(os.path.join(src, f), repo / f)
        except OSError:
            (repo / f).write_bytes(open(os.path.join(src, f), "rb").read())
    (repo / "README.md").write_text("---\nlicense: apache-2.0\nlibrary_name: transformers\n---\n# Qwen\n")
    (repo / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    (repo / "pytorch_model.bin").write_bytes(b"\0" * 4096)
    (repo / "onnx").mkdir()
    (repo / "onnx" / "model.onnx").write_bytes(b"\0" * 4096)
    return repo


def test_pull_of_a_safetensors_repository_resumes_and_skips_other_formats(env, tmp_path):
    repo = _hub_repo(tmp_path)
    weights = os.path.getsize(repo / "model.safetensors")
    hub = Hub(tmp_path, "--fail-after", str(weights // 2))
    try:
        r = minerva(env, "pull", f"hf.co/{HF_REPO}", hub=hub, timeout=300)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(HF_NAME + "\t"), r.stdout
        gets = [e for e in hub.requests(expect=8) if e["method"] == "GET" and e["path"].startswith("/cdn/")]
        # Each model file once, the weights twice: cut halfway, then resumed with a Range.
        weights_sha = _sha256(repo / "model.safetensors")
        resumed = [e for e in gets if e["path"] == f"/cdn/{weights_sha}"]
        assert [(e["status"], e["range"] is not None) for e in resumed] == [(200, False), (206, True)], resumed
        assert resumed[1]["bytes"] == weights - int(resumed[1]["range"].split("=")[1].rstrip("-"))
        assert len(gets) == len(MODEL_FILES) + 1 + 1  # + README.md, + the resumed request
        asked = {e["path"] for e in hub.requests()}
        assert not any("pytorch_model.bin" in p or "onnx" in p or "gitattributes" in p for p in asked), asked
    finally:
        hub.stop()
    assert _rows(env) == {HF_NAME: "mlx"}
    show = minerva(env, "show", HF_NAME).stdout
    assert "apache-2.0" in show and f"source          {hub.base}/{HF_REPO}" in show, show
    # A quantization tag on a safetensors repository is an error that says why.
    hub = Hub(tmp_path)
    try:
        r = minerva(env, "pull", f"hf.co/{HF_REPO}:Q4_K_M", hub=hub)
        assert r.returncode != 0 and "not a set of GGUF files" in r.stderr, r.stderr
    finally:
        hub.stop()


@pytest.fixture(scope="module")
def hf_store(tmp_path_factory):
    """A store holding the HF model (imported) and the Qwen GGUF, served with no --model."""
    store = tmp_path_factory.mktemp("store-hf")
    env = {**os.environ, "MINERVA_MODELS": str(store)}
    assert minerva(env, "import", _hf_dir(), "--name", "qwen:hf").returncode == 0
    assert minerva(env, "import", os.environ["MINERVA_QWEN_GGUF"], "--name", "qwen:gguf").returncode == 0
    proc, base, log = conftest._start_server(
        [], os.path.join(conftest.LOG_DIR, "minerva-e2e-store-hf-{port}.log"), model=False, store=str(store))
    yield base
    conftest._stop_server(proc, log)


def test_a_stored_hf_model_is_served_by_mlx_beside_a_gguf(hf_store):
    client = openai.OpenAI(base_url=f"{hf_store}/v1", api_key="none")
    backends = {m.id: (m.model_extra or {}).get("backend") for m in client.models.list().data}
    assert backends == {"qwen:gguf": "llama.cpp", "qwen:hf": "mlx"}
    messages = [{"role": "user", "content": "Write the word yes."}]
    hf = client.chat.completions.create(model="qwen:hf", messages=messages, max_tokens=4, temperature=0)
    gguf = client.chat.completions.create(model="qwen:gguf", messages=messages, max_tokens=4, temperature=0)
    assert hf.choices[0].message.content and hf.usage.completion_tokens >= 1
    # Same chat template, same tokenizer: the same prompt tokens on both backends.
    assert hf.usage.prompt_tokens == gguf.usage.prompt_tokens
    import httpx
    ps = {m["name"]: m for m in httpx.get(f"{hf_store}/api/ps").json()["models"]}
    assert ps["qwen:hf"]["backend"] == "mlx" and ps["qwen:hf"]["state"] == "loaded"
    assert ps["qwen:gguf"]["backend"] == "llama.cpp"


def test_a_backend_that_cannot_load_the_model_stops_serve_with_a_clear_error(tmp_path):
    r = minerva({**os.environ, "MINERVA_MODELS": str(tmp_path)},
                "serve", "--model", _hf_dir(), "--backend", "llama.cpp", "--port", "1", timeout=60)
    assert r.returncode != 0
    assert "--backend llama.cpp" in r.stderr and "cannot load 'safetensors' models" in r.stderr, r.stderr


def test_pull_over_the_ollama_api_reports_each_file(tmp_path):
    import ollama

    repo = _hub_repo(tmp_path)
    hub = Hub(tmp_path)
    store = tmp_path / "store"
    proc, base, log = conftest._start_server(
        [], os.path.join(conftest.LOG_DIR, "minerva-e2e-pull-hf-{port}.log"), model=False,
        store=str(store), env={"HF_ENDPOINT": hub.base})
    try:
        oc = ollama.Client(host=base)
        statuses = list(oc.pull(f"hf.co/{HF_REPO}", stream=True))
        assert statuses[0].status == "pulling manifest" and statuses[-1].status == "success"
        # One "pulling <digest>" per model file (and the model card), each run to its end.
        done = {s.digest for s in statuses if s.digest and s.total and s.completed == s.total}
        expected = {f"sha256:{_sha256(repo / f)}" for f in MODEL_FILES}
        assert expected <= done, (expected - done)
        # (An empty store starts with the default model, fetched by `minerva serve`.)
        models = {m.model: m for m in oc.list().models}
        assert models[HF_NAME].details.format == "safetensors"
        assert models[HF_NAME].details.quantization_level == "BF16"
        before = {f for _, _, files in os.walk(store / "blobs") for f in files}
        assert oc.delete(HF_NAME).status == "success"
        assert HF_NAME not in {m.model for m in oc.list().models}
        left = {f for _, _, files in os.walk(store / "blobs") for f in files}
        assert before - left == {e.removeprefix("sha256:").join(["sha256-", ""]) for e in done}
    finally:
        conftest._stop_server(proc, log)
        hub.stop()
