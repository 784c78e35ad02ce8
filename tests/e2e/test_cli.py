"""`minerva run`: one reply for a prompt, an interactive chat without one."""
import os
import subprocess

from conftest import _required_env


def run(args, stdin=None):
    binary = _required_env("MINERVA_BIN")
    model = _required_env("MINERVA_QWEN_GGUF")
    return subprocess.run(
        [binary, "run", "--model", model, "--ctx-size", "1024", "--temperature", "0", "--max-tokens", "16", *args],
        input=stdin, capture_output=True, text=True, timeout=300,
    )


def test_run_with_prompt_streams_one_reply():
    r = run(["What is 2 + 2? Answer with the number only."])
    assert r.returncode == 0, r.stderr
    assert "4" in r.stdout


def test_run_interactive_keeps_the_conversation():
    r = run([], stdin="My name is Ada. Reply with OK.\nWhat is my name? One word.\n/bye\n")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count(">>> ") >= 3
    assert "Ada" in r.stdout


def test_run_with_missing_model_fails_clearly():
    binary = _required_env("MINERVA_BIN")
    r = subprocess.run([binary, "run", "--model", "/nonexistent/model.gguf", "hi"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "is neither a model file" in r.stderr
