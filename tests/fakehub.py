"""A local server speaking the part of the Hub's HTTP API that huggingface_hub 2.x and `datasets` call: the upload
side (create repo, branch, validate-yaml, preupload, LFS batch and upload, commit, tag) for `r1f publish`, and the
read side (revision info, tree, file resolve) for `r1f ingest hf://...`. State is kept in memory. The Hub is the one
remote service faked in the tests, at the HTTP boundary; HF_HUB_DISABLE_XET=1 (see `hub_env`) because with hf_xet
installed huggingface_hub sends LFS files through the Xet protocol whatever a server says.
"""
from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

LFS_SUFFIXES = (".parquet", ".png")


class FakeHub:
    """The Hub's HTTP API as huggingface_hub 2.x calls it, with its state kept in memory."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, Any]] = {}
        self.lfs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str, str]] = []  # method, path, Authorization header
        self.fail_commits = 0  # answer the next N commits with a 500, applying nothing
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def commits(self, repo: str, branch: str = "main") -> list[dict[str, Any]]:
        return self.repos[repo]["branches"][branch]

    def files(self, repo: str, ref: str = "main") -> dict[str, bytes]:
        """The tree at a branch or tag, with LFS pointers resolved to the uploaded bytes."""
        repo_state = self.repos[repo]
        oid = repo_state["tags"].get(ref) or (repo_state["branches"][ref][-1]["oid"]
                                              if repo_state["branches"][ref] else None)
        commit = next(c for b in repo_state["branches"].values() for c in b if c["oid"] == oid)
        return {p: (self.lfs[v] if kind == "lfs" else v) for p, (kind, v) in commit["tree"].items()}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: Any = None, head_only: bool = False) -> None:
                if isinstance(body, FileAnswer):
                    data, headers = body.data, {"Content-Type": "application/octet-stream", **body.headers}
                else:
                    data, headers = json.dumps(body if body is not None else {}).encode(), {
                        "Content-Type": "application/json"}
                    if status >= 400:
                        headers["X-Error-Message"] = (body or {}).get("error", "error")
                        if (body or {}).get("code"):
                            headers["X-Error-Code"] = body["code"]
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(data))}.items():
                    self.send_header(name, value)
                self.end_headers()
                if not head_only:
                    self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

            def do_HEAD(self) -> None:
                self._route("HEAD")

            def _route(self, method: str) -> None:
                path = urlparse(self.path).path
                hub.requests.append((method, path, self.headers.get("Authorization", "")))
                body = self._body()
                with hub.lock:
                    status, answer = hub.handle(method, path, body)
                self._send(status, answer, head_only=method == "HEAD")

        return Handler

    # ------------------------------------------------------------------------------------------ the read side
    def add_dataset(self, repo: str, files: dict[str, bytes], gated: bool = False, summary: str = "add") -> str:
        """A commit on `repo`'s main branch setting these files (Parquet through LFS); its oid."""
        state = self.repos.setdefault(repo, {"type": "dataset", "visibility": "public", "branches": {"main": []},
                                             "tags": {}})
        state["gated"] = gated
        head = state["branches"]["main"]
        tree = dict(head[-1]["tree"]) if head else {}
        for path, data in files.items():
            if path.endswith(LFS_SUFFIXES):
                oid = hashlib.sha256(data).hexdigest()
                self.lfs[oid] = data
                tree[path] = ("lfs", oid)
            else:
                tree[path] = ("regular", data)
        oid = hashlib.sha1(json.dumps([repo, len(head), summary, sorted(tree)]).encode()).hexdigest()
        head.append({"oid": oid, "summary": summary, "description": None, "tree": tree, "operations": []})
        return oid

    def _commit(self, state: dict[str, Any], ref: str) -> dict[str, Any] | None:
        """The commit a branch, tag or commit oid names."""
        commits = [c for b in state["branches"].values() for c in b]
        oid = state["tags"].get(ref) or (state["branches"][ref][-1]["oid"] if state["branches"].get(ref) else ref)
        return next((c for c in commits if c["oid"] == oid), None)

    def _read(self, method: str, path: str) -> tuple[int, Any] | None:
        """Revision info, tree listing and file downloads of a stored revision; None for other routes."""
        m = (re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/(revision|tree)/([^/]+)(/.*)?", path)
             or re.fullmatch(r"/datasets/([^/]+/[^/]+)/(resolve)/([^/]+)/(.+)", path))
        if not m or method not in ("GET", "HEAD"):
            return None
        repo, action, ref = m.group(1), m.group(2), unquote(m.group(3))
        state = self.repos.get(repo)
        if state is None:
            return 404, {"error": "Repository not found", "code": "RepoNotFound"}
        if state.get("gated"):
            return 401, {"error": f"Access to dataset {repo} is restricted. You must have access to it and be "
                                  f"authenticated to access it. Please log in.", "code": "GatedRepo"}
        commit = self._commit(state, ref)
        if commit is None:
            if ref in state["branches"]:
                return None  # an empty branch of a repo the upload side made: its own answer
            return 404, {"error": f"Invalid rev id: {ref}", "code": "RevisionNotFound"}
        tree = commit["tree"]
        if action == "revision":
            return 200, {"id": repo, "sha": commit["oid"], "private": False,
                         "siblings": [{"rfilename": p} for p in sorted(tree)]}
        if action == "tree":
            return 200, [self._entry(p, kind, v) for p, (kind, v) in sorted(tree.items())]
        file_path = unquote(m.group(4))
        if file_path not in tree:
            return 404, {"error": "Entry not found", "code": "EntryNotFound"}
        kind, value = tree[file_path]
        data = self.lfs[value] if kind == "lfs" else value
        etag = value if kind == "lfs" else _git_sha1(value)
        return 200, FileAnswer(data, {"X-Repo-Commit": commit["oid"], "ETag": f'"{etag}"'})

    def _entry(self, path: str, kind: str, value: Any) -> dict[str, Any]:
        if kind == "lfs":
            data = self.lfs[value]
            return {"type": "file", "path": path, "size": len(data), "oid": _git_sha1(data),
                    "lfs": {"oid": value, "size": len(data), "pointerSize": 130}}
        return {"type": "file", "path": path, "size": len(value), "oid": _git_sha1(value)}

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        read = self._read(method, path)
        if read is not None:
            return read
        if method == "POST" and path == "/api/repos/create":
            req = json.loads(body)
            repo = f"{req['organization']}/{req['name']}"
            if repo in self.repos:
                # The Hub names the existing repo's url in its 409; create_repo(exist_ok=True) reads it.
                return 409, {"error": "You already created this dataset repo", "url": f"{self.url}/datasets/{repo}"}
            self.repos[repo] = {"type": req.get("type"), "visibility": req.get("visibility", "public"),
                                "branches": {"main": []}, "tags": {}}
            return 200, {"url": f"{self.url}/datasets/{repo}"}
        if method == "POST" and path == "/api/validate-yaml":
            content = json.loads(body)["content"]
            try:
                yaml.safe_load(content.split("\n---\n", 1)[0][4:])
            except yaml.YAMLError as exc:
                return 400, {"errors": [{"message": str(exc)}], "error": "invalid YAML"}
            return 200, {"errors": [], "warnings": []}
        if method == "PUT" and path.startswith("/lfs-upload/"):
            oid = path.rsplit("/", 1)[1]
            if hashlib.sha256(body).hexdigest() != oid:
                return 400, {"error": "sha256 mismatch"}
            self.lfs[oid] = body
            return 200, {}
        m = re.fullmatch(r"/datasets/([^/]+/[^/]+)\.git/info/lfs/objects/batch", path)
        if method == "POST" and m:
            objects = []
            for obj in json.loads(body)["objects"]:
                entry = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in self.lfs:
                    entry["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{obj['oid']}"}}
                objects.append(entry)
            return 200, {"transfer": "basic", "objects": objects}
        if method == "GET" and re.fullmatch(r"/api/datasets/[^/]+/[^/]+", path):
            path += "/revision/main"  # repo info without a revision: the default branch
        m = re.fullmatch(r"/api/datasets/([^/]+/[^/]+)/(preupload|commit|revision|branch|tag|tree)/(.+)", path)
        if not m or m.group(1) not in self.repos:
            return 404, {"error": f"no route or repo for {method} {path}"}
        repo, action, ref = m.group(1), m.group(2), unquote(m.group(3))
        state = self.repos[repo]
        head = state["branches"].get(ref, [])
        tree = head[-1]["tree"] if head else {}
        if action == "tree":  # list_repo_files: the whole tree in one page
            return 200, [{"type": "file", "path": p, "size": len(v) if kind == "regular" else len(self.lfs[v]),
                          "oid": v if kind == "lfs" else _git_sha1(v)} for p, (kind, v) in sorted(tree.items())]
        if action == "preupload":
            files = []
            for f in json.loads(body)["files"]:
                mode = "lfs" if f["path"].endswith(LFS_SUFFIXES) else "regular"
                old = tree.get(f["path"])
                oid = None
                if old:
                    oid = old[1] if old[0] == "lfs" else _git_sha1(old[1])
                files.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
            return 200, {"files": files}
        if action == "commit":
            if self.fail_commits:
                self.fail_commits -= 1
                return 500, {"error": "Internal Error - We're working hard to fix this as soon as possible!"}
            lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
            header = lines[0]["value"]
            new_tree = dict(tree)
            for line in lines[1:]:
                value = line["value"]
                if line["key"] == "file":
                    new_tree[value["path"]] = ("regular", base64.b64decode(value["content"]))
                elif line["key"] == "lfsFile":
                    if value["oid"] not in self.lfs:
                        return 422, {"error": f"LFS object {value['oid']} was never uploaded"}
                    new_tree[value["path"]] = ("lfs", value["oid"])
                elif line["key"] == "deletedFile":
                    if value["path"] not in new_tree:
                        return 404, {"error": f"A file with this name doesn't exist: {value['path']}"}
                    del new_tree[value["path"]]
            oid = hashlib.sha1(json.dumps([repo, ref, len(head), header["summary"], sorted(new_tree)]).encode()
                               ).hexdigest()
            head.append({"oid": oid, "summary": header["summary"], "description": header.get("description"),
                         "tree": new_tree, "operations": [(ln["key"], ln["value"]["path"]) for ln in lines[1:]]})
            return 200, {"commitUrl": f"{self.url}/datasets/{repo}/commit/{oid}", "commitOid": oid,
                         "pullRequestUrl": None}
        if action == "revision":
            return 200, {"id": repo, "sha": head[-1]["oid"] if head else None, "private": False}
        if action == "branch":
            if ref in state["branches"]:
                return 409, {"error": "branch exists"}
            state["branches"][ref] = list(state["branches"]["main"])
            return 200, {}
        if action == "tag":
            req = json.loads(body)
            if req["tag"] in state["tags"]:
                return 409, {"error": "tag exists"}
            known = {c["oid"] for b in state["branches"].values() for c in b}
            target = ref if ref in known else (state["branches"][ref][-1]["oid"] if ref in state["branches"] else None)
            if target is None:
                return 404, {"error": f"revision {ref} not found"}
            state["tags"][req["tag"]] = target
            state.setdefault("tag_messages", {})[req["tag"]] = req.get("message")
            return 200, {}
        return 404, {"error": "unknown"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class FileAnswer:
    """A file's bytes and the headers the Hub sends with them."""

    def __init__(self, data: bytes, headers: dict[str, str]) -> None:
        self.data, self.headers = data, headers


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


def hub_env(hub: FakeHub, tmp_path: Path, token: str | None) -> dict[str, str]:
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf-home"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_VERBOSITY": "info", "HF_TOKEN": token or "",
           "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return env
