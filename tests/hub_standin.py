"""A small stand-in of the Hugging Face hub's HTTP API on loopback, for `mot push` tests: model
repositories as git-like histories in memory, with the endpoints huggingface_hub's `create_repo`,
`create_branch`, `list_repo_commits`, `upload_large_folder`, `create_commit` and `list_repo_files`
call (LFS uploads included, through the basic transfer). Never the real hub.

Like the hub: a new repository has one commit holding `.gitattributes`; a branch starts from a
revision (branch or commit id); a commit applies its files and deletions to its branch's head.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, unquote, urlparse

import yaml

from loopback import serve

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.png filter=lfs diff=lfs merge=lfs -text\n"
LFS_SUFFIXES = (".safetensors", ".bin", ".png")


@dataclass
class Commit:
    id: str
    title: str
    parent: str | None
    files: dict[str, bytes]
    date: str = field(default_factory=lambda: datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


@dataclass
class Repo:
    private: bool
    branches: dict[str, str] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def history(self, revision: str) -> list[Commit]:
        """The commits of `revision` (a branch or commit id), newest first."""
        commit_id = self.branches.get(revision, revision)
        found = []
        while commit_id is not None:
            found.append(self.commits[commit_id])
            commit_id = self.commits[commit_id].parent
        return found


class HubStandIn:
    """Serve the hub's API at `self.url`; `repos` holds what was pushed; `requests` every call made."""

    def __init__(self):
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    data = b""
                    while size := int(self.rfile.readline().strip() or b"0", 16):
                        data += self.rfile.read(size)
                        self.rfile.readline()
                    self.rfile.readline()
                    return data
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _serve(self, method: str) -> None:
                url = urlparse(self.path)
                body = self._body()
                with hub.lock:
                    hub.requests.append((method, url.path))
                    status, reply, headers = hub.handle(method, unquote(url.path), parse_qs(url.query), body)
                data = json.dumps(reply).encode()
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - http.server's names
                self._serve("GET")

            def do_POST(self):  # noqa: N802
                self._serve("POST")

            def do_PUT(self):  # noqa: N802
                self._serve("PUT")

            def log_message(self, *args):
                pass

        self.httpd, self.url = serve(Handler)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def files(self, repo_id: str, revision: str) -> dict[str, bytes]:
        """What `revision` of `repo_id` holds: path -> bytes."""
        repo = self.repos[repo_id]
        return dict(repo.commits[repo.branches.get(revision, revision)].files)

    def _commit(self, repo: Repo, branch: str, title: str, files: dict[str, bytes]) -> Commit:
        parent = repo.branches.get(branch)
        digest = hashlib.sha1(json.dumps([parent, title, sorted((k, hashlib.sha256(v).hexdigest())
                                                                for k, v in files.items())]).encode())
        commit = Commit(digest.hexdigest(), title, parent, files)
        repo.commits[commit.id] = commit
        repo.branches[branch] = commit.id
        return commit

    def handle(self, method: str, path: str, query: dict, body: bytes) -> tuple[int, object, dict]:
        not_found = (404, {"error": "not found"}, {"X-Error-Code": "RepoNotFound"})
        if method == "POST" and path == "/api/repos/create":
            request = json.loads(body)
            repo_id = f"{request['organization']}/{request['name']}" if request.get("organization") else request["name"]
            if repo_id in self.repos:
                return 409, {"error": "You already created this model repo", "url": f"{self.url}/{repo_id}"}, {}
            repo = self.repos[repo_id] = Repo(private=bool(request.get("private")))
            self._commit(repo, "main", "initial commit", {".gitattributes": GITATTRIBUTES})
            return 200, {"url": f"{self.url}/{repo_id}"}, {}
        if method == "POST" and path == "/api/validate-yaml":
            content = json.loads(body)["content"]
            try:
                yaml.safe_load(content.split("---", 2)[1])
            except (IndexError, yaml.YAMLError) as err:
                return 400, {"errors": [{"message": str(err)}]}, {}
            return 200, {"warnings": []}, {}
        if method == "PUT" and (match := re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", path)):
            if hashlib.sha256(body).hexdigest() != match.group(1):
                return 400, {"error": "sha256 mismatch"}, {}
            self.lfs[match.group(1)] = body
            return 200, {}, {}
        match = re.fullmatch(r"/(?:api/models/)?([^/]+/[^/]+?)(\.git/info/lfs/objects/batch|/[a-z-]+)(?:/(.*))?", path)
        if not match or match.group(1) not in self.repos:
            return not_found
        repo_id, action, rest = match.groups()
        repo = self.repos[repo_id]
        revision = (rest or "main").split("/", 1)[0]
        if action != ".git/info/lfs/objects/batch" and action not in ("/branch",) and \
                revision not in repo.branches and revision not in repo.commits:
            return 404, {"error": f"Invalid rev id: {revision}"}, {"X-Error-Code": "RevisionNotFound"}
        if action == ".git/info/lfs/objects/batch":
            request = json.loads(body)
            objects = [{"oid": o["oid"], "size": o["size"],
                        **({} if o["oid"] in self.lfs else
                           {"actions": {"upload": {"href": f"{self.url}/lfs-upload/{o['oid']}"}}})}
                       for o in request["objects"]]
            return 200, {"transfer": "basic", "objects": objects}, {}
        if method == "GET" and action == "/commits":
            return 200, [{"id": c.id, "authors": [{"user": "mot"}], "date": c.date, "title": c.title, "message": ""}
                         for c in repo.history(revision)], {}
        if method == "POST" and action == "/branch":
            if revision in repo.branches:
                return 409, {"error": f"Branch {revision} already exists"}, {}
            start = json.loads(body or b"{}").get("startingPoint", "main")
            repo.branches[revision] = repo.branches.get(start, start)
            return 200, {}, {}
        if method == "POST" and action == "/preupload":
            files = json.loads(body)["files"]
            return 200, {"files": [{"path": f["path"], "shouldIgnore": False,
                                    "uploadMode": "lfs" if f["path"].endswith(LFS_SUFFIXES) or f["size"] > 10 << 20
                                    else "regular"} for f in files]}, {}
        if method == "POST" and action == "/commit":
            files = dict(repo.commits[repo.branches[revision]].files)
            header = {}
            for line in body.splitlines():
                item = json.loads(line)
                value = item["value"]
                if item["key"] == "header":
                    header = value
                elif item["key"] == "file":
                    files[value["path"]] = base64.b64decode(value["content"])
                elif item["key"] == "lfsFile":
                    if value["oid"] not in self.lfs:
                        return 400, {"error": f"LFS object {value['oid']} was never uploaded"}, {}
                    files[value["path"]] = self.lfs[value["oid"]]
                elif item["key"] == "deletedFile":
                    files.pop(value["path"], None)
            commit = self._commit(repo, revision, header.get("summary", ""), files)
            return 200, {"commitUrl": f"{self.url}/{repo_id}/commit/{commit.id}", "commitOid": commit.id}, {}
        if method == "GET" and action == "/tree":
            files = repo.commits[repo.branches.get(revision, revision)].files
            return 200, [{"type": "file", "path": p, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                         for p, b in sorted(files.items())], {}
        return not_found
