#!/usr/bin/env python3
"""A stand-in for the Hugging Face hub, for the store's end-to-end tests (standard library only).

    python3 tests/e2e/hub.py --root DIR --port 0 --log FILE [--fail-after BYTES] [--bad-etag]
                             [--bad-etag-for TEXT] [--rate BYTES_PER_S]

Serves DIR/<owner>/<repo>/<file> the way huggingface.co does:

- GET/HEAD /{owner}/{repo}/resolve/{revision}/{file}: 302 to /cdn/<sha256> on this server, with
  X-Linked-Etag: "<sha256>", X-Linked-Size, ETag and X-Repo-Commit;
- GET/HEAD /cdn/<sha256>: the bytes, with Range support (206 + Content-Range; 416 for a range
  that starts past the end), ETag and Accept-Ranges;
- GET /api/models/{owner}/{repo}: {"id": "owner/repo", "siblings": [{"rfilename": ...}]};
- anything unknown: 404 with a JSON error.

The first line on stdout is `PORT <n>`. Each request appends one JSON line to the log: method,
path, range (or null), status, bytes (of body sent). --fail-after BYTES drops the connection
after BYTES bytes of the first full-body download of each file (to test resuming). --bad-etag
announces a wrong sha256 in X-Linked-Etag (to test verification), --bad-etag-for TEXT only for
the files whose name contains TEXT. --rate sends file bodies at about BYTES_PER_S (to watch a
download's progress).
"""
import argparse
import hashlib
import json
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = "0" * 40


class Hub:
    def __init__(self, root, log_path, fail_after, bad_etag, rate=None, bad_etag_for=None):
        self.rate = rate
        self.bad_etag_for = bad_etag_for
        self.root = os.path.abspath(root)
        self.log_path = log_path
        self.fail_after = fail_after
        self.bad_etag = bad_etag
        self.lock = threading.Lock()
        self.failed = set()  # files whose first full download was already cut
        self.by_sha = {}  # sha256 -> path
        self.repos = {}  # (owner, repo) -> {file: sha256}
        for dirpath, _, names in os.walk(self.root):
            for name in names:
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, self.root).split(os.sep)
                if len(rel) < 3:
                    continue
                sha = self._sha256(path)
                self.by_sha[sha] = path
                self.repos.setdefault((rel[0], rel[1]), {})["/".join(rel[2:])] = sha

    @staticmethod
    def _sha256(path):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    def log(self, entry):
        with self.lock, open(self.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def first_full_download(self, sha):
        """True once per file, when --fail-after is set: this download gets cut."""
        with self.lock:
            if self.fail_after is None or sha in self.failed:
                return False
            self.failed.add(sha)
            return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hub: Hub = None

    def log_message(self, *args):
        pass

    def do_HEAD(self):
        self.route(head=True)

    def do_GET(self):
        self.route(head=False)

    def route(self, head):
        self.sent = 0
        self.status = None
        path = unquote(urlsplit(self.path).path)
        try:
            m = re.fullmatch(r"/api/models/([^/]+)/([^/]+)", path)
            if m:
                return self.api(m.group(1), m.group(2), head)
            m = re.fullmatch(r"/([^/]+)/([^/]+)/resolve/([^/]+)/(.+)", path)
            if m:
                return self.resolve(m.group(1), m.group(2), m.group(4), head)
            m = re.fullmatch(r"/cdn/([0-9a-f]{64})", path)
            if m and m.group(1) in self.hub.by_sha:
                return self.cdn(m.group(1), head)
            self.json(404, {"error": "Entry not found"}, head)
        finally:
            self.hub.log(
                {
                    "method": self.command,
                    "path": path,
                    "range": self.headers.get("Range"),
                    "status": self.status,
                    "bytes": self.sent,
                }
            )

    def json(self, status, body, head, headers=()):
        data = json.dumps(body).encode()
        self.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(data)
            self.sent = len(data)

    def api(self, owner, repo, head):
        files = self.hub.repos.get((owner, repo))
        if files is None:
            return self.json(404, {"error": "Repository not found"}, head)
        siblings = [{"rfilename": f} for f in sorted(files)]
        self.json(200, {"id": f"{owner}/{repo}", "siblings": siblings}, head)

    def resolve(self, owner, repo, file, head):
        sha = self.hub.repos.get((owner, repo), {}).get(file)
        if sha is None:
            return self.json(404, {"error": "Entry not found"}, head)
        bad = self.hub.bad_etag or (self.hub.bad_etag_for is not None and self.hub.bad_etag_for in file)
        announced = hashlib.sha256(b"not the file").hexdigest() if bad else sha
        size = os.path.getsize(self.hub.by_sha[sha])
        self.json(
            302,
            {"redirect": f"/cdn/{sha}"},
            head,
            headers=[
                ("Location", f"/cdn/{sha}"),
                ("X-Linked-Etag", f'"{announced}"'),
                ("X-Linked-Size", str(size)),
                ("ETag", f'"{announced}"'),
                ("X-Repo-Commit", COMMIT),
            ],
        )

    def cdn(self, sha, head):
        path = self.hub.by_sha[sha]
        size = os.path.getsize(path)
        start, end = 0, size - 1
        range_header = self.headers.get("Range")
        partial = False
        if range_header:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header.strip())
            if not m or int(m.group(1)) >= size:
                self.status = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = int(m.group(1))
            if m.group(2):
                end = min(int(m.group(2)), size - 1)
            partial = True
        length = end - start + 1
        self.status = 206 if partial else 200
        self.send_response(self.status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{sha}"')
        if partial:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if head:
            return
        cut = None
        if not partial and not head and self.hub.first_full_download(sha):
            cut = self.hub.fail_after
        began = time.monotonic()
        with open(path, "rb") as f:
            f.seek(start)
            left = length
            while left > 0:
                n = min(left, 1 << 20)
                if self.hub.rate:
                    n = min(n, max(1, self.hub.rate // 20))
                    ahead = self.sent / self.hub.rate - (time.monotonic() - began)
                    if ahead > 0:
                        time.sleep(ahead)
                if cut is not None:
                    n = min(n, cut - self.sent)
                    if n <= 0:
                        # Drop the connection mid-body, as a failing network would.
                        self.close_connection = True
                        self.wfile.flush()
                        self.connection.shutdown(2)
                        return
                chunk = f.read(n)
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                self.sent += len(chunk)
                left -= len(chunk)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", required=True)
    parser.add_argument("--fail-after", type=int, default=None)
    parser.add_argument("--bad-etag", action="store_true")
    parser.add_argument("--bad-etag-for", default=None)
    parser.add_argument("--rate", type=int, default=None)
    args = parser.parse_args()
    Handler.hub = Hub(args.root, args.log, args.fail_after, args.bad_etag, args.rate, args.bad_etag_for)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
