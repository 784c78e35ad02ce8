"""CPU kernels picked at run time (issue 19, part 1).

Minerva's llama.cpp has ggml's CPU backend in every x86 variant (libggml-cpu-<variant>.so beside
the binary); the worker loads the best this CPU runs, `--cpu-variant` forces one, and /api/ps,
/metrics and the log say which runs. Installed elsewhere (bin/ and lib/minerva/, as
scripts/install.sh lays it out), the binary and its workers find the libraries from there, and
MINERVA_BACKEND_DIR points the variants at another directory. The parity tests force `haswell`
(x86-64-v3, what the reference build is compiled for): crates/minerva-llama/tests/greedy_parity.rs.
"""
import glob
import os
import shutil
import subprocess

import httpx
import pytest

import conftest

# Each variant's x86 features, as ggml's CMakeLists (GGML_CPU_ALL_VARIANTS) compiles them, in the
# /proc/cpuinfo spelling.
VARIANT_FLAGS = {
    "x64": [],
    "sse42": ["sse4_2"],
    "sandybridge": ["sse4_2", "avx"],
    "ivybridge": ["sse4_2", "avx", "f16c"],
    "piledriver": ["sse4_2", "avx", "f16c", "fma"],
    "haswell": ["sse4_2", "avx", "f16c", "fma", "avx2", "bmi2"],
    "skylakex": ["sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512f"],
    "cannonlake": ["sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512f", "avx512vbmi"],
    "cascadelake": ["sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512f", "avx512_vnni"],
    "icelake": ["sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512f", "avx512vbmi", "avx512_vnni"],
    "cooperlake": ["sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512f", "avx512_vnni", "avx512_bf16"],
    "zen4": ["sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512f", "avx512vbmi", "avx512_vnni",
             "avx512_bf16"],
    "alderlake": ["sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx_vnni"],
    "sapphirerapids": ["sse4_2", "avx", "f16c", "fma", "avx2", "bmi2", "avx512f", "avx512vbmi",
                       "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8"],
}


def cpu_flags():
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def runnable_here():
    flags = cpu_flags()
    return {v for v, needs in VARIANT_FLAGS.items() if all(n in flags for n in needs)}


def bin_dir():
    return os.path.dirname(os.path.abspath(conftest._required_env("MINERVA_BIN")))


def first_model(base):
    return httpx.get(f"{base}/v1/models", timeout=30).json()["data"][0]["id"]


def chat(base, model, content="Write a haiku about rain.", n=12):
    return httpx.post(f"{base}/v1/chat/completions", timeout=300, json={
        "model": model, "messages": [{"role": "user", "content": content}],
        "max_tokens": n, "temperature": 0})


def ps_entry(base, model):
    models = httpx.get(f"{base}/api/ps", timeout=30).json()["models"]
    return next(m for m in models if m["name"] == model)


def mapped_libraries(pid):
    with open(f"/proc/{pid}/maps", encoding="utf-8") as f:
        return {line.split()[-1] for line in f if ".so" in line}


# ggml's variants below the x86-64-v3 baseline all of llama.cpp is compiled for: not installed.
BELOW_BASELINE = {"x64", "sse42", "sandybridge", "ivybridge", "piledriver"}


def test_the_binary_has_every_x86_variant_from_its_baseline_up_beside_it():
    found = {os.path.basename(p)[len("libggml-cpu-"):-len(".so")]
             for p in glob.glob(os.path.join(bin_dir(), "libggml-cpu-*.so"))}
    assert found == set(VARIANT_FLAGS) - BELOW_BASELINE, found


def test_the_best_variant_for_this_cpu_runs_and_is_reported(server):
    model = first_model(server)
    assert chat(server, model).status_code == 200
    entry = ps_entry(server, model)
    variant = entry["cpu_variant"]
    assert variant in runnable_here(), (variant, sorted(runnable_here()))
    # The most capable variant this CPU runs: no runnable variant has a strict superset of its
    # features.
    mine = set(VARIANT_FLAGS[variant])
    better = [v for v in runnable_here() if set(VARIANT_FLAGS[v]) > mine]
    assert not better, f"{variant} runs, but this CPU also runs {better}"
    if "avx512f" in cpu_flags():
        assert "avx512f" in mine, variant
    # The worker process mapped that module, and only that one.
    cpu_modules = {os.path.basename(p) for p in mapped_libraries(entry["pid"]) if "libggml-cpu-" in p}
    assert cpu_modules == {f"libggml-cpu-{variant}.so"}, cpu_modules
    metrics = httpx.get(f"{server}/metrics", timeout=30).text
    assert f'minerva_cpu_variant_info{{model="{model}",variant="{variant}"}} 1' in metrics, metrics
    assert f"llama.cpp CPU kernels loaded variant={variant}" in conftest.server_log.text()


def _server(tmp_path, name, args, env=None, store=None, model=None):
    return conftest._start_server(args, str(tmp_path / f"{name}-{{port}}.log"), model=model,
                                  store=store, env=env)


def test_a_forced_variant_runs_and_gives_the_reference_build_s_greedy_text(tmp_path, server):
    """`haswell` is x86-64-v3, the only variant before runtime selection: its greedy text must be
    what the auto-selected variant's server answered within near-ties, and on a CPU where another
    variant is the best, the two servers really run different kernels."""
    proc, base, log = _server(tmp_path, "forced", ["--cpu-variant", "haswell"])
    try:
        model = first_model(base)
        r = chat(base, model, n=24)
        assert r.status_code == 200, r.text
        entry = ps_entry(base, model)
        assert entry["cpu_variant"] == "haswell"
        assert any(p.endswith("libggml-cpu-haswell.so") for p in mapped_libraries(entry["pid"]))
        auto = chat(server, first_model(server), n=24)
        assert auto.status_code == 200
        forced_text = r.json()["choices"][0]["message"]["content"]
        auto_text = auto.json()["choices"][0]["message"]["content"]
        # Different kernels round differently; a short greedy reply of a 0.5B model still agrees
        # at least at its start.
        assert forced_text[:20] == auto_text[:20], (forced_text, auto_text)
    finally:
        conftest._stop_server(proc, log)


def _serve_refuses(tmp_path, args, env=None):
    """`minerva serve ARGS` exits at start, before listening; its stderr."""
    r = subprocess.run([conftest._required_env("MINERVA_BIN"), "serve", "--port", "0", *args],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "MINERVA_MODELS": str(tmp_path / "store"), "NO_COLOR": "1",
                            **(env or {})})
    assert r.returncode != 0, r.stdout + r.stderr
    assert "panicked" not in r.stderr and "ready" not in r.stdout, r.stdout + r.stderr
    return r.stderr


@pytest.mark.parametrize("variant", ["avx9000", "../../etc/passwd"])
def test_an_unknown_variant_stops_the_server_at_start_with_what_there_is(tmp_path, variant):
    said = _serve_refuses(tmp_path, ["--cpu-variant", variant])
    assert f"no CPU variant '{variant}'" in said and "--cpu-variant" in said, said
    assert "haswell" in said, said  # the installed and usable variants are listed


def test_a_variant_this_cpu_cannot_run_stops_the_server_at_start(tmp_path):
    missing = [v for v in VARIANT_FLAGS if v not in runnable_here() and v not in BELOW_BASELINE]
    if not missing:
        pytest.skip("this CPU runs every installed variant")
    said = _serve_refuses(tmp_path, [], env={"MINERVA_CPU_VARIANT": missing[-1]})
    assert "lacks features" in said and missing[-1] in said, said


def test_a_missing_backend_dir_stops_the_server_at_start(tmp_path):
    said = _serve_refuses(tmp_path, [], env={"MINERVA_BACKEND_DIR": str(tmp_path / "nowhere")})
    assert "MINERVA_BACKEND_DIR" in said and "no such directory" in said, said


def test_variant_names_are_read_as_ggml_writes_them(tmp_path):
    """Case and surrounding blanks do not matter; the log names the variant and the usable ones."""
    proc, base, log = _server(tmp_path, "upper", ["--cpu-variant", " HASWELL "])
    try:
        model = first_model(base)
        assert chat(base, model).status_code == 200
        assert ps_entry(base, model)["cpu_variant"] == "haswell"
        with open(log.name, encoding="utf-8", errors="replace") as f:
            text = f.read()
        assert "llama.cpp CPU kernels for GGUF models variant=haswell" in text, text[-2000:]
    finally:
        conftest._stop_server(proc, log)


def _store_with_qwen(tmp_path):
    store = tmp_path / "store"
    r = subprocess.run([conftest._required_env("MINERVA_BIN"), "import", conftest._required_env("MINERVA_QWEN_GGUF"),
                        "--name", "qwen:test"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "MINERVA_MODELS": str(store)})
    assert r.returncode == 0, r.stderr
    return store


def _install(prefix, variants_dir=None):
    """bin/minerva and lib/minerva/*.so under `prefix`, as scripts/install.sh lays them out;
    with `variants_dir`, the CPU variants go there instead of lib/minerva."""
    (prefix / "bin").mkdir(parents=True)
    lib = prefix / "lib" / "minerva"
    lib.mkdir(parents=True)
    shutil.copy2(conftest._required_env("MINERVA_BIN"), prefix / "bin" / "minerva")
    for so in glob.glob(os.path.join(bin_dir(), "lib*.so")):
        if os.path.basename(so) == "libllama-common.so":
            continue
        dest = variants_dir if variants_dir and "libggml-cpu-" in so else lib
        shutil.copy2(so, dest)


def test_an_installed_binary_and_its_workers_find_the_libraries_from_another_directory(tmp_path, monkeypatch):
    prefix = tmp_path / "prefix"
    _install(prefix)
    monkeypatch.setenv("MINERVA_BIN", str(prefix / "bin" / "minerva"))
    monkeypatch.delenv("LD_LIBRARY_PATH", raising=False)
    proc, base, log = _server(tmp_path, "installed", [])
    try:
        model = first_model(base)
        r = chat(base, model)
        assert r.status_code == 200, r.text
        entry = ps_entry(base, model)
        libs = mapped_libraries(entry["pid"])
        ours = str(prefix / "lib" / "minerva")
        for name in ("libllama.so", "libggml-base.so", f"libggml-cpu-{entry['cpu_variant']}.so"):
            assert os.path.join(ours, name) in libs, sorted(libs)
        assert not any(bin_dir() in p for p in libs), "a library came from the build directory"
    finally:
        conftest._stop_server(proc, log)


def test_minerva_backend_dir_names_where_the_variants_are(tmp_path, monkeypatch):
    prefix = tmp_path / "prefix"
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    _install(prefix, variants_dir=kernels)
    monkeypatch.setenv("MINERVA_BIN", str(prefix / "bin" / "minerva"))
    # Without it, no variant is found: the load fails and says where it looked.
    proc, base, log = _server(tmp_path, "no-variants", [], model=False, store=str(_store_with_qwen(tmp_path)))
    try:
        r = chat(base, "qwen:test")
        assert r.status_code >= 400
        message = r.json()["error"]["message"]
        assert "no llama.cpp CPU backend" in message and "MINERVA_BACKEND_DIR" in message, message
        assert str(prefix / "bin") in message, message
    finally:
        conftest._stop_server(proc, log)
    proc, base, log = _server(tmp_path, "backend-dir", [], env={"MINERVA_BACKEND_DIR": str(kernels)})
    try:
        model = first_model(base)
        assert chat(base, model).status_code == 200
        entry = ps_entry(base, model)
        assert str(kernels / f"libggml-cpu-{entry['cpu_variant']}.so") in mapped_libraries(entry["pid"])
    finally:
        conftest._stop_server(proc, log)


def test_minerva_run_takes_the_variant_too(tmp_path):
    """`minerva run --cpu-variant` (or MINERVA_CPU_VARIANT) loads the model on that variant;
    an unknown one is refused with the variants there are."""
    env = {**os.environ, "MINERVA_MODELS": str(tmp_path / "store"), "RUST_LOG": "info",
           "NO_COLOR": "1"}
    base = [conftest._required_env("MINERVA_BIN"), "run", "-m",
            conftest._required_env("MINERVA_QWEN_GGUF"), "--max-tokens", "4", "--temperature", "0"]
    done = subprocess.run([*base, "--cpu-variant", "HASWELL", "Say hi."], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "llama.cpp CPU kernels loaded variant=haswell" in done.stderr, done.stderr
    assert done.stdout.strip(), "a reply"
    refused = subprocess.run([*base, "Say hi."], capture_output=True, text=True, timeout=300,
                             env={**env, "MINERVA_CPU_VARIANT": "pentium"})
    assert refused.returncode != 0
    assert "no CPU variant 'pentium'" in refused.stderr and "haswell" in refused.stderr, refused.stderr
