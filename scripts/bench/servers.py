"""Starting and stopping a server process for a benchmark: a free port, waiting for /health,
and a context manager that always stops the process. Shared by bench.py and load.py."""
import socket
import subprocess
import sys
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base, proc, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            if urllib.request.urlopen(base + "/health", timeout=1).status == 200:
                return
        except Exception:
            pass
        time.sleep(0.2)
    sys.exit("server did not become healthy")


class Server:
    """One server process, started for a round and stopped after it."""

    def __init__(self, name, cmd, base, log_path=None, env=None, timeout=300, log_file=None):
        """`log_path` is opened (appending) for the server's output; `log_file` is an already
        open binary file used instead (left open); `timeout` bounds the wait for /health."""
        self.name, self.cmd, self.base, self.log_path = name, cmd, base, log_path
        self.env, self.timeout, self.log_file = env, timeout, log_file
        self.proc = None
        self.log = None

    def __enter__(self):
        out = self.log_file or subprocess.DEVNULL
        if self.log_path:
            self.log = open(self.log_path, "ab")
            out = self.log
        self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        try:
            wait_healthy(self.base, self.proc, self.timeout)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log:
            self.log.close()
