"""Modelfiles, as `ollama create` users write them: `minerva create NAME -f Modelfile` from each
kind of FROM (a library model, a GGUF file, a Hugging Face directory, an uploaded blob), the
Modelfile text of /api/create, SYSTEM/PARAMETER/MESSAGE/LICENSE/TEMPLATE in effect (prompt token
counts and greedy replies against the base model with the same settings spelled out), num_ctx
changing how the model is loaded, `show --modelfile` round trips, and bad Modelfiles refused with
their line named and the library unchanged."""
import hashlib
import os
import subprocess

import httpx
import ollama
import openai
import pytest

import conftest
from test_library import GEMMA, QWEN, client, serve, store  # noqa: F401 (store is a fixture)

SYSTEM = "You are a pirate. Answer in one short sentence."
PIRATE = f'''# a pirate, as Ollama's docs write one
FROM {QWEN}
SYSTEM """{SYSTEM}"""
PARAMETER temperature 0
PARAMETER top_k 1
PARAMETER num_predict 6
MESSAGE user Who are you?
MESSAGE assistant "A pirate, arr."
LICENSE """Apache-2.0
(for this test)"""
'''
MESSAGES = [{"role": "user", "content": "Who are you?"}, {"role": "assistant", "content": "A pirate, arr."}]
ASK = [{"role": "user", "content": "Where is your ship?"}]


@pytest.fixture(scope="module")
def served(store):  # noqa: F811
    """A server over a store of its own, and that store's directory for the CLI."""
    proc, base, log = serve(store, "modelfile")
    yield base, store.parent / f"{store.name}-modelfile"
    conftest._stop_server(proc, log)


def cli(root, *args):
    return subprocess.run([os.environ["MINERVA_BIN"], *args], env={**os.environ, "MINERVA_MODELS": str(root)},
                          capture_output=True, text=True, timeout=600)


def create_cli(root, name, path):
    r = cli(root, "create", name, "-f", str(path))
    assert r.returncode == 0, r.stderr
    return r.stdout


def write(directory, text, name="Modelfile"):
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    return path


def show(base, name):
    r = httpx.post(f"{base}/api/show", json={"model": name}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def listed(base):
    return {m.model: m for m in client(base).list().models}


def test_cli_creates_from_each_kind_of_from(served, tmp_path):
    base, root = served
    gemma = os.environ["MINERVA_GEMMA_GGUF"]
    digest = hashlib.sha256(open(gemma, "rb").read()).hexdigest()
    # A library model.
    create_cli(root, "from-model", write(tmp_path / "a", f"FROM {QWEN}\nSYSTEM Be brief.\n"))
    # A GGUF file, relative to the Modelfile's directory (as Ollama reads it).
    (tmp_path / "b").mkdir()
    os.symlink(gemma, tmp_path / "b" / "weights.gguf")
    create_cli(root, "from-file:v1", write(tmp_path / "b", "FROM ./weights.gguf\nPARAMETER num_predict 2\n"))
    # A blob already in the store, by its digest.
    create_cli(root, "from-blob", write(tmp_path / "c", f"FROM @sha256:{digest}\n"))
    models = listed(base)
    assert models[f"{GEMMA}"].digest == digest
    assert models["from-file:v1"].digest == digest and models["from-blob:latest"].digest == digest
    assert models["from-model:latest"].digest == models[QWEN].digest
    assert show(base, "from-model:latest")["system"] == "Be brief."
    # Each loads and answers; the file's model keeps its own num_predict.
    out = client(base).generate(model="from-file:v1", prompt="Hi", options={"temperature": 0})
    assert out.done and 1 <= out.eval_count <= 2
    # A Hugging Face directory (run by mlx-lm, so only listed here).
    hf = conftest.hf_dir()
    create_cli(root, "from-dir", write(tmp_path / "d", f"FROM {hf}\nSYSTEM Be brief.\n"))
    assert listed(base)["from-dir:latest"].details.format == "safetensors"


def test_modelfile_settings_apply_on_every_route(served, tmp_path):
    """The same Modelfile through the API's `modelfile` text and through the CLI: its settings
    shown, and in effect on the Ollama and OpenAI routes."""
    base, root = served
    r = httpx.post(f"{base}/api/create", json={"model": "pirate-api", "modelfile": PIRATE, "stream": False},
                   timeout=120)
    assert r.status_code == 200 and r.json()["status"] == "success", r.text
    create_cli(root, "pirate-cli", write(tmp_path, PIRATE))
    for name in ["pirate-api:latest", "pirate-cli:latest"]:
        s = show(base, name)
        assert s["system"] == SYSTEM and s["messages"] == MESSAGES
        assert s["license"] == "Apache-2.0\n(for this test)"
        assert "temperature" in s["parameters"] and "num_predict                    6" in s["parameters"]
    oc = openai.OpenAI(base_url=f"{base}/v1", api_key="none", max_retries=0, timeout=300)
    spelled = [{"role": "system", "content": SYSTEM}, *MESSAGES, *ASK]
    want = oc.chat.completions.create(model=QWEN, messages=spelled, temperature=0, max_tokens=6,
                                      extra_body={"top_k": 1, "cache_prompt": False})
    mine = oc.chat.completions.create(model="pirate-api:latest", messages=ASK, extra_body={"cache_prompt": False})
    assert mine.usage.prompt_tokens == want.usage.prompt_tokens
    assert mine.choices[0].message.content == want.choices[0].message.content
    o = client(base).chat(model="pirate-cli:latest", messages=ASK)
    assert o.prompt_eval_count == want.usage.prompt_tokens and o.eval_count <= 6
    assert o.message.content == want.choices[0].message.content


def test_show_modelfile_round_trips(served, tmp_path):
    base, root = served
    create_cli(root, "trip", write(tmp_path / "one", PIRATE + 'TEMPLATE """{% for m in messages %}{{ m.content }}\n{% endfor %}"""\n'
                                   + "PARAMETER stop <|im_end|>\nPARAMETER stop \"User:\"\n"))
    text = show(base, "trip:latest")["modelfile"]
    r = cli(root, "show", "trip", "--modelfile")
    assert r.returncode == 0 and r.stdout == text, (r.stdout, text)
    assert text.count("PARAMETER stop") == 2 and "TEMPLATE" in text and "LICENSE" in text
    # The printed Modelfile makes the same model, through the CLI and through the API.
    create_cli(root, "trip-again", write(tmp_path / "two", text))
    r = httpx.post(f"{base}/api/create", json={"model": "trip-api", "modelfile": text}, timeout=120)
    assert r.status_code == 200, r.text
    keys = ["system", "messages", "parameters", "template", "license"]
    first = show(base, "trip:latest")
    for again in ["trip-again:latest", "trip-api:latest"]:
        other = show(base, again)
        assert {k: other.get(k) for k in keys} == {k: first.get(k) for k in keys}, again
        assert listed(base)[again].digest == listed(base)["trip:latest"].digest
    # A model given by its file prints FROM its path (what `ollama show` does for every model).
    assert show(base, QWEN)["modelfile"].count(f"FROM {QWEN}") == 1


def test_a_jinja_template_and_num_ctx_take_effect(served, tmp_path):
    base, _ = served
    template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    text = f'FROM {QWEN}\nTEMPLATE """{template}"""\nPARAMETER num_ctx 512\n'
    r = httpx.post(f"{base}/api/create", json={"model": "bare", "modelfile": text, "stream": False}, timeout=120)
    assert r.status_code == 200, r.text
    c = client(base)
    prompt = "Hello there, how are you today?"
    out = c.generate(model="bare:latest", prompt=prompt, options={"num_predict": 1, "temperature": 0})
    tokens = httpx.post(f"{base}/tokenize", json={"model": "bare:latest", "content": prompt}, timeout=60).json()["tokens"]
    # The prompt is the template's rendering: the text alone, no chat markup.
    assert out.prompt_eval_count == len(tokens)
    templated = c.generate(model=QWEN, prompt=prompt, options={"num_predict": 1, "temperature": 0})
    assert templated.prompt_eval_count > len(tokens) + 5
    ps = {m["name"]: m for m in httpx.get(f"{base}/api/ps", timeout=30).json()["models"]}
    assert ps["bare:latest"]["context_length"] == 512
    assert show(base, "bare:latest")["template"] == template
    # A prompt over the model's own 512 tokens is refused, where the base model takes it.
    long = "one two three four " * 150
    with pytest.raises(ollama.ResponseError) as info:
        c.generate(model="bare:latest", prompt=long, options={"num_predict": 1})
    assert info.value.status_code == 400
    assert c.generate(model=QWEN, prompt=long, options={"num_predict": 1}).done


BAD = [
    (f"FROM {QWEN}\nFORM x\n", "line 2", "unknown instruction 'FORM'"),
    ("FROM nothing:here\n", "line 1", "nothing:here"),
    (f"FROM {QWEN}\nTEMPLATE \"{{% for m in messages %}}\"\n", "line 2", "template"),
    (f"FROM {QWEN}\n\nPARAMETER temperature hot\n", "line 3", "temperature"),
    (f"FROM {QWEN}\nPARAMETER num_ctx twelve\n", "line 2", "num_ctx"),
    (f"FROM {QWEN}\nPARAMETER nonsense 1\n", "line 2", "unknown parameter 'nonsense'"),
    (f"FROM {QWEN}\nTEMPLATE {{{{ if .System }}}} {{{{ .Prompt }}}}\n", "line 2", "never closed"),
    (f"FROM {QWEN}\nTEMPLATE {{{{ nonsense .Prompt }}}}\n", "line 2", "nonsense"),
    (f"FROM {QWEN}\nADAPTER ./lora.gguf\n", "line 2", "LoRA"),
    (f"FROM {QWEN}\nMESSAGE wizard hi\n", "line 2", "role"),
    (f'FROM {QWEN}\nSYSTEM """never closed\n', "line 2", "never closed"),
    ("SYSTEM hi\n", "Modelfile", "no FROM"),
]


def test_bad_modelfiles_name_the_line_and_change_nothing(served, tmp_path):
    base, root = served
    before = sorted(listed(base))
    for i, (text, line, said) in enumerate(BAD):
        r = httpx.post(f"{base}/api/create", json={"model": f"bad{i}", "modelfile": text}, timeout=60)
        assert r.status_code == 400, (text, r.status_code, r.text)
        assert line in r.json()["error"] and said in r.json()["error"], (text, r.text)
        out = cli(root, "create", f"bad{i}", "-f", str(write(tmp_path / str(i), text)))
        assert out.returncode != 0 and line in out.stderr and said in out.stderr, (text, out.stderr)
    # Over the API a FROM path is refused (the file would be the server's); the CLI reads it.
    r = httpx.post(f"{base}/api/create", json={"model": "bad-path", "modelfile": "FROM ./model.gguf\n"}, timeout=60)
    assert r.status_code == 400 and "line 1" in r.json()["error"] and "/api/blobs" in r.json()["error"], r.text
    out = cli(root, "create", "bad-path", "-f", str(write(tmp_path / "p", "FROM ./model.gguf\n")))
    assert out.returncode != 0 and "no such file" in out.stderr, out.stderr
    assert sorted(listed(base)) == before


# Ollama's ChatML template in its Go syntax (as its library writes one), and the older
# prompt/response form: both must give Qwen's own Jinja prompt, token for token.
CHATML_GO = """{{- range $i, $m := .Messages }}{{ $last := eq (len (slice $.Messages $i)) 1 -}}
<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ if and $last (ne .Role "assistant") }}<|im_start|>assistant
{{ end }}{{ end }}"""
LEGACY_GO = """{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}<|im_start|>user
{{ .Prompt }}<|im_end|>
<|im_start|>assistant
"""


def test_ollama_go_templates_render_as_the_models_own(served):
    base, _ = served
    r = httpx.post(f"{base}/api/create", timeout=120, json={
        "model": "go-chatml", "stream": False,
        "modelfile": f'FROM {QWEN}\nTEMPLATE """{CHATML_GO}"""\nSYSTEM Be brief.\n'})
    assert r.status_code == 200, r.text
    c = client(base)
    options = {"temperature": 0, "num_predict": 8}
    ask = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
           {"role": "user", "content": "Another one?"}]
    mine = c.chat(model="go-chatml:latest", messages=ask, options=options)
    want = c.chat(model=QWEN, messages=[{"role": "system", "content": "Be brief."}, *ask], options=options)
    assert mine.prompt_eval_count == want.prompt_eval_count
    assert mine.message.content == want.message.content
    assert "tools" not in show(base, "go-chatml:latest")["capabilities"]
    # A request's own template on /api/generate (Ollama's older form, .System and .Prompt).
    own = c.generate(model=QWEN, prompt="Name a colour.", system="Be brief.", template=LEGACY_GO,
                     options=options)
    plain = c.generate(model=QWEN, prompt="Name a colour.", system="Be brief.", options=options)
    assert own.prompt_eval_count == plain.prompt_eval_count and own.response == plain.response
    # A request template that does not render is a 400; with raw, a 400.
    for bad in ["{{ if .Prompt }}", "{{ nonsense .Prompt }}"]:
        with pytest.raises(ollama.ResponseError) as info:
            c.generate(model=QWEN, prompt="x", template=bad)
        assert info.value.status_code == 400 and "template" in str(info.value)
    with pytest.raises(ollama.ResponseError) as info:
        c.generate(model=QWEN, prompt="x", template=LEGACY_GO, raw=True)
    assert info.value.status_code == 400


def test_settings_are_checked_as_requests_are(served, tmp_path):
    """What a request would be refused for is refused at create, with nothing made; values are
    kept typed; errors name the field the client sent."""
    base, root = served
    before = sorted(listed(base))
    for parameters, said in [({"temperature": -1}, "temperature"), ({"top_p": 5}, "top_p"),
                             ({"num_ctx": 1.5}, "num_ctx"), ({"repeat_last_n": -7}, "repeat_last_n")]:
        r = httpx.post(f"{base}/api/create", json={"model": "bad", "from": QWEN, "parameters": parameters}, timeout=60)
        assert r.status_code == 400 and said in r.json()["error"], (parameters, r.text)
        assert "parameters: parameters" not in r.json()["error"]
    out = cli(root, "create", "bad", "-f", str(write(tmp_path / "t", f"FROM {QWEN}\nPARAMETER temperature -1\n")))
    assert out.returncode != 0 and "line 2" in out.stderr and "temperature" in out.stderr, out.stderr
    # A JSON field's error is the field's, not a line of the Modelfile beside it.
    r = httpx.post(f"{base}/api/create", timeout=60, json={
        "model": "bad", "modelfile": f"FROM {QWEN}\nSYSTEM hi\n", "parameters": {"temperature": "hot"}})
    assert r.status_code == 400 and r.json()["error"].startswith("parameters:"), r.text
    for from_, said in [("/models/x.gguf", "upload the file"), ("sha256:" + "a" * 64, "files")]:
        r = httpx.post(f"{base}/api/create", json={"model": "bad", "from": from_}, timeout=60)
        assert r.status_code == 400 and said in r.json()["error"], r.text
    r = httpx.post(f"{base}/api/create", json={"model": "bad", "from": QWEN, "system": "x" * (2 << 20)}, timeout=60)
    assert r.status_code == 400 and "system" in r.json()["error"], r.text[:300]
    assert sorted(listed(base)) == before
    # An integer's fraction is cut off, as Ollama types options.
    r = httpx.post(f"{base}/api/create", json={"model": "typed", "from": QWEN,
                                               "parameters": {"num_ctx": 512.7, "temperature": 0}}, timeout=60)
    assert r.status_code == 200, r.text
    shown = show(base, "typed:latest")
    assert "num_ctx                        512\n" in shown["parameters"] + "\n", shown["parameters"]


def test_cli_reads_utf16_and_names_lines(served, tmp_path):
    base, root = served
    path = tmp_path / "Modelfile"
    path.write_bytes(b"\xff\xfe" + f"FROM {QWEN}\r\nSYSTEM Be brief.\r\n".encode("utf-16-le"))
    create_cli(root, "utf16", path)
    assert show(base, "utf16:latest")["system"] == "Be brief."
    out = cli(root, "create", "x", "-f", str(write(tmp_path / "b", "FROM @sha256:" + "0" * 64 + "\n")))
    assert out.returncode != 0 and "line 1" in out.stderr and "no such blob" in out.stderr, out.stderr
    out = cli(root, "create", "x", "-f", str(write(tmp_path / "c", f"FROM {QWEN}\nFROM {GEMMA}\n")))
    assert out.returncode != 0 and "line 2" in out.stderr, out.stderr
    r = cli(root, "show", "utf16")
    assert r.returncode == 0 and "System" in r.stdout and "Be brief." in r.stdout
