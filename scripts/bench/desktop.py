#!/usr/bin/env python3
"""The desktop app's figures (issue 18): binary size, .deb size, time from start to a usable
window, and idle memory.

  python3 scripts/bench/desktop.py --app target/release/minerva-desktop [--deb FILE.deb] [--runs 3]

Each run starts the app under an Xvfb display of its own (and a D-Bus session, as a desktop
has) over an empty models root on a free port, and reports:
- window: seconds from exec until the window's webview has loaded the chat UI from the app's
  server (the app logs `window: page loaded url=http://.../ui/`) and the UI's script has read
  the model list (`path=/v1/models`), i.e. a window one can type in;
- idle memory: 10 s later, the proportional set size (PSS, /proc/PID/smaps_rollup) of the app
  and of every process it started (WebKit's web and network processes), summed, with no model
  loaded.
Medians over --runs. Stdlib only; needs Xvfb and dbus-run-session (scripts/setup.sh --test).
"""
import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_pids(sid):
    out = subprocess.run(["pgrep", "-s", str(sid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def comm(pid):
    """The process's name, as the kernel keeps it (15 characters at most)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except FileNotFoundError:
        return "?"


def one_run(app, display):
    store = tempfile.mkdtemp(prefix="minerva-desktop-bench-")
    port = free_port()
    log_path = os.path.join(store, "app.log")
    env = {**os.environ, "DISPLAY": display, "MINERVA_MODELS": store, "NO_COLOR": "1",
           "MINERVA_DESKTOP_CONFIG": os.path.join(store, "desktop.json"),
           "RUST_LOG": "info,minerva_server::trace=debug"}
    started = time.time()
    proc = subprocess.Popen(["dbus-run-session", "--", app, "--port", str(port)],
                            stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    try:
        deadline = started + 120
        ui = f"window: page loaded url=http://127.0.0.1:{port}/ui/"
        window_s = None
        while time.time() < deadline:
            text = open(log_path, errors="replace").read()
            if ui in text and "path=/v1/models" in text.split(ui, 1)[1]:
                window_s = time.time() - started
                break
            if proc.poll() is not None:
                raise SystemExit(f"the app exited:\n{text}")
            time.sleep(0.05)
        if window_s is None:
            raise SystemExit("no usable window in 120 s")
        time.sleep(10)
        # The app and the WebKit processes it starts; not the session's D-Bus services
        # (accessibility bus, portals), which a desktop session runs anyway.
        pids = [p for p in session_pids(proc.pid)
                if comm(p).startswith(("minerva-deskto", "WebKit"))]
        by = {}
        for p in pids:
            by[comm(p)] = by.get(comm(p), 0) + pss_kib(p)
        return window_s, sum(by.values()), by
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        shutil.rmtree(store, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--app", required=True, help="the minerva-desktop binary")
    ap.add_argument("--deb", help="the .deb from scripts/desktop-deb.sh")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    print(f"binary {args.app}: {os.path.getsize(args.app) / 1e6:.1f} MB")
    here = os.path.dirname(os.path.abspath(args.app))
    for where in (here, os.path.join(here, "..", "lib", "minerva")):
        libs = [os.path.join(where, f) for f in (os.listdir(where) if os.path.isdir(where) else [])
                if f.startswith("lib") and f.endswith(".so")]
        if libs:
            size = sum(os.path.getsize(f) for f in libs)
            print(f"llama.cpp libraries in {os.path.normpath(where)}: {len(libs)} files, {size / 1e6:.1f} MB")
            break
    if args.deb:
        print(f".deb {args.deb}: {os.path.getsize(args.deb) / 1e6:.1f} MB")
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x800x24",
                             "-nolisten", "tcp"], pass_fds=(write,),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    display = ":" + os.read(read, 16).decode().strip()
    os.close(read)
    try:
        windows, memory = [], []
        for i in range(args.runs):
            w, kib, by = one_run(args.app, display)
            windows.append(w)
            memory.append(kib)
            parts = ", ".join(f"{k} {v / 1024:.0f}" for k, v in sorted(by.items()))
            print(f"run {i + 1}: usable window after {w:.2f} s; idle PSS {kib / 1024:.0f} MiB ({parts})")
        print(f"median: usable window after {statistics.median(windows):.2f} s; "
              f"idle memory (PSS, app and WebKit processes) {statistics.median(memory) / 1024:.0f} MiB")
    finally:
        xvfb.terminate()
        xvfb.wait()


if __name__ == "__main__":
    main()
