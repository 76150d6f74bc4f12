"""A local stand-in of the Hugging Face hub's file API, on loopback: `HEAD` and `GET`
`/{org}/{name}/resolve/{revision}/{path}` serve `root/{org}/{name}/{revision}/{path}`, with the headers
huggingface_hub reads (commit, ETag, size) and its error codes for a missing repository, revision or
file. Enough for `hf_hub_download`; every request is recorded."""

from __future__ import annotations

import hashlib
import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from loopback import serve

RESOLVE = re.compile(r"/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<path>.+)")


class HubServer:
    """Serve the repositories under `root` (`root/org/name/revision/...`) at `self.url`."""

    def __init__(self, root: Path):
        self.root, self.requests = Path(root), []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self):  # noqa: N802 - http.server's names
                self._answer(body=False)

            def do_GET(self):  # noqa: N802
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                server.requests.append((self.command, self.path))
                status, headers, data = server.resolve(self.path)
                self.send_response(status)
                for key, value in {**headers, "Content-Length": str(len(data))}.items():
                    self.send_header(key, value)
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd, self.url = serve(Handler)

    def resolve(self, url_path: str) -> tuple[int, dict[str, str], bytes]:
        match = RESOLVE.fullmatch(url_path.split("?")[0])
        if not match:
            return 404, {"X-Error-Code": "RepoNotFound"}, b"not found"
        repo = self.root / match["repo"]
        if not repo.is_dir():
            return 404, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"}, b"no repo"
        revision = repo / match["revision"]
        if not revision.is_dir():
            return 404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "Invalid rev id"}, b"no revision"
        file = revision / match["path"]
        if not file.is_file():
            return 404, {"X-Error-Code": "EntryNotFound", "X-Error-Message": "Entry not found"}, b"no file"
        data = file.read_bytes()
        commit = hashlib.sha1(f"{match['repo']}@{match['revision']}".encode()).hexdigest()
        return 200, {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                     "Content-Type": "application/octet-stream"}, data

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
