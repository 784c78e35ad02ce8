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


def test_run_in_a_terminal_shows_only_the_chat():
    """`minerva run` in a pseudo-terminal, as a user types: the screen holds the prompt, the reply
    and nothing else (no log lines), as `ollama run`."""
    import pty
    import re
    import select
    import time

    binary = _required_env("MINERVA_BIN")
    model = _required_env("MINERVA_QWEN_GGUF")
    import fcntl
    import struct
    import termios

    main, sub = pty.openpty()
    fcntl.ioctl(sub, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}
    proc = subprocess.Popen(
        [binary, "run", "--model", model, "--ctx-size", "1024", "--temperature", "0", "--max-tokens", "16"],
        stdin=sub, stdout=sub, stderr=sub, env=env, close_fds=True)
    os.close(sub)
    screen = b""

    def read_until(marker, count=1, timeout=180):
        nonlocal screen
        deadline = time.time() + timeout
        while screen.count(marker) < count and time.time() < deadline:
            ready, _, _ = select.select([main], [], [], 1)
            if ready:
                try:
                    screen += os.read(main, 4096)
                except OSError:
                    break
        return screen.count(marker) >= count

    try:
        assert read_until(b">>> "), screen
        os.write(main, b"What is 2 + 2? Answer with the number only.\n")
        assert read_until(b">>> ", count=2, timeout=300), screen
        os.write(main, b"/bye\n")
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    # What the terminal shows once the spinner's redraws are applied.
    text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", screen).decode("utf-8", "replace")
    lines = [line.rstrip("\r").split("\r")[-1].strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    assert proc.returncode == 0, text
    assert not re.search(r"\b(INFO|WARN|DEBUG|TRACE)\b|minerva_\w+::|llama", text), text
    assert any("4" in line for line in lines), text
    assert lines[-1].startswith(">>>"), lines
