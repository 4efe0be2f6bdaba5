"""`r1f publish`: the Hub folder read back by `datasets.load_dataset` for every config and checked against the
catalog, and the upload through the real huggingface_hub client against a local server speaking the part of
the Hub's HTTP API it uses (create repo, branch, validate-yaml, preupload, LFS batch and upload, commit, tag,
revision info). The Hub is the one remote service faked here, at the HTTP boundary; HF_HUB_DISABLE_XET=1
because with hf_xet installed huggingface_hub sends LFS files through the Xet protocol whatever a server says.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import datasets
import pytest
import yaml

from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest
from catalogs.query import sql
from releases.release import create_release

from tests.catalogs.helpers import DATA, R1F, write_generations

ODD_SOURCE = "web: forum\nposts #1 'quoted' | piped"
LFS_SUFFIXES = (".parquet", ".png")


# ---------------------------------------------------------------------------------------------- the catalog
def build_catalog(root: Path, odd_source: bool = False) -> Catalog:
    """Reasoning traces (some wrong, some mixing languages) and Chinese chat responses, judged, filtered,
    with per-prompt pass rates, released as `rel` (every judge and filter passed)."""
    cat = Catalog(root / "cat")
    ingest(cat, DATA / "math_40.jsonl", IngestOptions(source="math"))
    gens = root / "gens.jsonl"
    write_generations(gens)
    ingest(cat, gens, IngestOptions(source=ODD_SOURCE if odd_source else "mult", generations=True,
                                    model="deepseek-r1", domain="math"))
    chat = root / "chat.jsonl"
    rows = json.loads((DATA / "alpaca_zh_20.json").read_text(encoding="utf-8"))[:8]
    chat.write_text("".join(json.dumps({"prompt": r["instruction"] + r["input"], "response": r["output"],
                                        "completion_tokens": len(r["output"])}, ensure_ascii=False) + "\n"
                            for r in rows), encoding="utf-8")
    ingest(cat, chat, IngestOptions(source="alpaca_zh", generations=True, model="deepseek-v3",
                                    kind="non_reasoning", domain="general", language="zh"))
    verdicts, decisions, stats = [], [], {}
    for row in cat.generations().iter_rows(named=True):
        gid, pid, run = row["generation_id"], row["prompt_id"], row["run_id"]
        m = re.search(r"compute (\d+) times", row["reasoning"] or "")
        if m:  # reasoning traces: the math judge and the language filter decide
            ok = row["answer"].endswith(f"\\boxed{{{int(m.group(1)) * 7}}}.")
            verdicts.append({"generation_id": gid, "judge": "math_accuracy", "judge_version": "1",
                             "score": float(ok), "passed": ok, "reason": "correct" if ok else "wrong_answer"})
            mixed = "思考" in row["reasoning"]
            decisions.append({"generation_id": gid, "filter": "language_mixing", "filter_version": "2",
                              "params_hash": "h1", "params": {"max_other_share": 0.01}, "passed": not mixed,
                              "reason": "mixed_language: zh 0.02" if mixed else "ok", "value": 0.02 * mixed})
            s = stats.setdefault(pid, {"prompt_id": pid, "run_id": run, "samples": 0, "accepted": 0,
                                       "status": "solved", "rounds": 1, "tokens": 0})
            s["samples"] += 1
            s["accepted"] += ok
            s["tokens"] += row["completion_tokens"] or 0
    for s in stats.values():
        s["pass_rate"] = s["accepted"] / s["samples"]
    cat.add_verdicts(verdicts)
    cat.add_filter_decisions(decisions)
    cat.set_prompt_stats(list(stats.values()))
    create_release(cat, "rel")
    return cat


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return build_catalog(tmp_path_factory.mktemp("publish"))


def run_r1f(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*R1F, *args], check=False, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"r1f {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def card_header(readme: Path) -> dict[str, Any]:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("\n---\n", 1)[0][4:])


# ---------------------------------------------------------------------------------------------- --out
def test_out_folder_loads_every_config_and_matches_the_catalog(catalog: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "hub"
    proc = run_r1f("publish", "rel", "--repo-id", "org/r1-rel", "--out", str(out), "--catalog", str(catalog.root),
                   env={"HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf-home")})  # --out needs no token
    assert "not uploaded" in proc.stdout

    _, members = sql(catalog, "SELECT m.generation_id, p.kind, g.reasoning, g.answer, p.answer, p.source, "
                              "r.model FROM release_members m JOIN prompts p USING (prompt_id) "
                              "JOIN generations g USING (generation_id) JOIN runs r ON r.run_id = g.run_id "
                              "WHERE release_name = 'rel'")
    by_id = {r[0]: r for r in members}
    kinds = {k for _, k, *_ in members}
    assert kinds == {"reasoning", "non_reasoning"}

    header = card_header(out / "README.md")
    configs = {c["config_name"]: c for c in header["configs"]}
    assert set(configs) == {"all", "reasoning", "non_reasoning"} and configs["all"]["default"] is True
    infos = {i["config_name"]: i for i in header["dataset_info"]}
    assert header["language"] == ["en", "zh"] and header["size_categories"] == ["n<1K"]
    assert "text-generation" in header["task_categories"] and header["license"] == "unknown"

    for config in ("all", "reasoning", "non_reasoning"):
        ds = datasets.load_dataset(str(out), config, split="train")
        want = [g for g, k, *_ in members if config == "all" or k == config]
        assert sorted(ds["generation_id"]) == sorted(want)
        assert infos[config]["splits"][0]["num_examples"] == len(want)
        # The features the card declares are the ones the files hold.
        assert datasets.Features._from_yaml_list(infos[config]["features"]) == ds.features
        for row in ds:
            _, kind, reasoning, answer, reference, source, model = by_id[row["generation_id"]]
            assert (row["kind"], row["reasoning"], row["answer"], row["reference"], row["source"], row["model"]) \
                == (kind, reasoning, answer, reference, source, model)
            assert row["messages"][-1] == {"role": "assistant", "content": row["completion"][0]["content"]}
            assert row["messages"][:-1] == row["prompt"]
            if kind == "reasoning":
                assert [(v["judge"], v["passed"], v["score"]) for v in row["verdicts"]] == \
                    [("math_accuracy", True, 1.0)]
            else:
                assert row["verdicts"] == []
    assert set(ds.column_names) >= {"messages", "prompt", "completion", "reasoning", "answer", "reference",
                                    "source", "domain", "language", "model", "generation_id", "verdicts"}

    # The manifest beside the data is the catalog's, byte for byte: its sha256 is the card's figure.
    _, rel = sql(catalog, "SELECT manifest, manifest_sha256 FROM releases WHERE name = 'rel'")
    manifest_bytes = (out / "manifest.json").read_bytes()
    assert manifest_bytes.decode() == rel[0][0]
    assert hashlib.sha256(manifest_bytes).hexdigest() == rel[0][1]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert rel[0][1] in card and "r1f show g_" in card
    # Every figure from the catalog: counts, judges and filters with versions and thresholds, drop reasons.
    assert "| mult | 10 |" in card and "| alpaca_zh | 8 |" in card
    assert "| math_accuracy | 1 | 30 | 20 | 66.7% |" in card
    assert '`{"max_other_share": 0.01}`' in card and "| judge | math_accuracy | wrong_answer | 10 |" in card
    for title in ("Accept rate per source", "Language shares", "Pass rate per prompt (rejection sampling)"):
        assert title in card
    pngs = sorted((out / "assets").glob("*.png"))
    assert len(pngs) == 7 and all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert all(f"](assets/{p.name})" in card for p in pngs)
    recipes = {p.name for p in (out / "recipes").iterdir()}
    assert {"judges.yaml", "filters.yaml", "release.yaml"} <= recipes and any(n.startswith("generate-r_")
                                                                              for n in recipes)
    assert yaml.safe_load((out / "recipes" / "filters.yaml").read_text())["filters"] == [
        {"name": "language_mixing", "params": {"max_other_share": 0.01}}]

    # One exporter: the data files are exactly what `r1f export --format hf --style hub` writes.
    exported = tmp_path / "export"
    run_r1f("export", "rel", "--format", "hf", "--style", "hub", "--out", str(exported), "--catalog",
            str(catalog.root))
    files = sorted(p.relative_to(out) for p in (out / "data").rglob("*.parquet"))
    assert files == sorted(p.relative_to(exported) for p in (exported / "data").rglob("*.parquet"))
    assert all((out / f).read_bytes() == (exported / f).read_bytes() for f in files)
    assert (out / "manifest.json").read_bytes() == (exported / "manifest.json").read_bytes()

    # The folder is deterministic: built again, byte for byte the same (so a re-publish uploads nothing).
    again = tmp_path / "again"
    run_r1f("publish", "rel", "--repo-id", "org/r1-rel", "--out", str(again), "--catalog", str(catalog.root))
    assert _tree(out) == _tree(again)
    # --out refuses to overwrite unless told to.
    proc = run_r1f("publish", "rel", "--repo-id", "org/r1-rel", "--out", str(out), "--catalog",
                   str(catalog.root), check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr + proc.stdout


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_source_name_that_would_break_yaml(tmp_path: Path) -> None:
    cat = build_catalog(tmp_path, odd_source=True)
    out = tmp_path / "hub"
    run_r1f("publish", "rel", "--repo-id", "org/odd", "--out", str(out), "--catalog", str(cat.root))
    header = card_header(out / "README.md")  # parses: the header is dumped by PyYAML, not formatted by hand
    assert header["pretty_name"] == "rel" and len(header["configs"]) == 3
    from huggingface_hub import DatasetCard

    assert DatasetCard.load(out / "README.md").data.to_dict()["configs"] == header["configs"]
    ds = datasets.load_dataset(str(out), "reasoning", split="train")
    assert set(ds["source"]) == {ODD_SOURCE}
    card = (out / "README.md").read_text(encoding="utf-8")
    # In the card's tables the name stays on one row, its pipe escaped.
    assert "| web: forum posts #1 'quoted' \\| piped | 10 |" in card


# ---------------------------------------------------------------------------------------------- a fake Hub
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

            def _send(self, status: int, body: Any = None) -> None:
                data = json.dumps(body if body is not None else {}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if status >= 400:
                    self.send_header("X-Error-Message", (body or {}).get("error", "error"))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PUT(self) -> None:
                self._route("PUT")

            def _route(self, method: str) -> None:
                path = urlparse(self.path).path
                hub.requests.append((method, path, self.headers.get("Authorization", "")))
                body = self._body()
                with hub.lock:
                    status, answer = hub.handle(method, path, body)
                self._send(status, answer)

        return Handler

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
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


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob " + str(len(data)).encode() + b"\0" + data).hexdigest()


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = FakeHub()
    yield server
    server.close()


def hub_env(hub: FakeHub, tmp_path: Path, token: str | None) -> dict[str, str]:
    env = {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1", "HF_HOME": str(tmp_path / "hf-home"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_VERBOSITY": "info", "HF_TOKEN": token or "",
           "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return env


def _token() -> str:
    return "hf_" + secrets.token_hex(16)


def _nowhere(token: str, *places: Path | str) -> None:
    for place in places:
        if isinstance(place, str):
            assert token not in place
            continue
        for p in [place] if place.is_file() else place.rglob("*"):
            if p.is_file():
                assert token.encode() not in p.read_bytes(), p


# ---------------------------------------------------------------------------------------------- upload
def test_publish_one_tagged_commit_and_the_token_nowhere(catalog: Catalog, hub: FakeHub, tmp_path: Path) -> None:
    token = _token()
    env = hub_env(hub, tmp_path, token)
    proc = run_r1f("publish", "rel", "--repo-id", "org/r1-rel", "--private", "--catalog", str(catalog.root),
                   env=env)
    assert "published" in proc.stdout and "one commit" in proc.stdout and "tag rel: created" in proc.stdout
    repo = hub.repos["org/r1-rel"]
    assert repo["type"] == "dataset" and repo["visibility"] == "private"
    commits = hub.commits("org/r1-rel")
    assert len(commits) == 1 and commits[0]["summary"] == "Publish release rel"
    assert "members sha256" in commits[0]["description"]
    assert repo["tags"] == {"rel": commits[0]["oid"]}
    # What arrived is the folder `--out` writes, byte for byte (Parquet and PNGs through LFS).
    local = tmp_path / "local"
    run_r1f("publish", "rel", "--repo-id", "org/r1-rel", "--out", str(local), "--catalog", str(catalog.root))
    arrived = hub.files("org/r1-rel", "rel")
    assert arrived == _tree(local)
    assert any(p.startswith("data/reasoning/") for p in arrived) and "README.md" in arrived
    # The token went to the Hub, in the Authorization header, and nowhere else.
    assert any(auth == f"Bearer {token}" for _, _, auth in hub.requests)
    _nowhere(token, proc.stdout, proc.stderr, catalog.root, tmp_path / "tmp", local)
    assert not list((tmp_path / "tmp").iterdir())  # the build folder is removed after a good upload
    assert not (tmp_path / "hf-home" / "token").exists()  # never stored

    # Publishing the same release again: no second commit, the tag where it was.
    again = run_r1f("publish", "rel", "--repo-id", "org/r1-rel", "--catalog", str(catalog.root), env=env)
    assert len(hub.commits("org/r1-rel")) == 1 and repo["tags"] == {"rel": commits[0]["oid"]}
    assert "no new commit" in again.stdout and "tag rel: already there" in again.stdout
    _nowhere(token, again.stdout, again.stderr)

    # To a branch: created from main, the commit lands there (unchanged files: no new commit on it).
    run_r1f("publish", "rel", "--repo-id", "org/r1-rel", "--revision", "v1-branch", "--catalog",
            str(catalog.root), env=env)
    assert [c["oid"] for c in hub.commits("org/r1-rel", "v1-branch")] == [commits[0]["oid"]]


def test_a_500_on_the_commit_is_retried_into_one_commit(catalog: Catalog, hub: FakeHub, tmp_path: Path) -> None:
    token = _token()
    hub.fail_commits = 1
    proc = run_r1f("publish", "rel", "--repo-id", "org/flaky", "--catalog", str(catalog.root),
                   env=hub_env(hub, tmp_path, token))
    assert "answered 500; retrying" in proc.stderr
    assert len(hub.commits("org/flaky")) == 1 and hub.repos["org/flaky"]["tags"]["rel"] == \
        hub.commits("org/flaky")[0]["oid"]
    _nowhere(token, proc.stdout, proc.stderr)


def test_a_hub_that_keeps_failing_publishes_nothing_and_keeps_the_folder(catalog: Catalog, hub: FakeHub,
                                                                         tmp_path: Path) -> None:
    token = _token()
    hub.fail_commits = 100
    proc = run_r1f("publish", "rel", "--repo-id", "org/down", "--catalog", str(catalog.root),
                   env=hub_env(hub, tmp_path, token), check=False)
    assert proc.returncode == 2, proc.stderr
    assert "commit on org/down failed (500)" in proc.stderr and "Traceback" not in proc.stderr
    assert hub.commits("org/down") == [] and hub.repos["org/down"]["tags"] == {}  # none, not half
    kept = re.search(r"the folder stays at (\S+)", proc.stderr.replace("\n", ""))
    assert kept, proc.stderr
    folder = Path(kept.group(1))
    assert folder.is_dir() and len(datasets.load_dataset(str(folder), "all", split="train")) == 18
    _nowhere(token, proc.stdout, proc.stderr, folder)


@pytest.mark.parametrize(("args", "message"), [
    (["nope", "--repo-id", "org/ds"], "no release named 'nope'"),
    (["rel", "--repo-id", "just-a-name"], "write it as ORG/DATASET"),
    (["rel", "--repo-id", "org/bad name"], "only letters, digits"),
    (["rel", "--repo-id", "org/a--b"], "'--' and '..' are not allowed"),
    (["rel", "--repo-id", "org/x/y"], "write it as ORG/DATASET"),
])
def test_bad_input_is_refused_before_the_hub_is_called(catalog: Catalog, hub: FakeHub, tmp_path: Path,
                                                       args: list[str], message: str) -> None:
    proc = run_r1f("publish", *args, "--catalog", str(catalog.root), env=hub_env(hub, tmp_path, _token()),
                   check=False)
    assert proc.returncode == 2 and message in proc.stderr + proc.stdout, proc.stderr
    assert "Traceback" not in proc.stderr and hub.requests == []


def test_no_token(catalog: Catalog, hub: FakeHub, tmp_path: Path) -> None:
    proc = run_r1f("publish", "rel", "--repo-id", "org/ds", "--catalog", str(catalog.root),
                   env=hub_env(hub, tmp_path, None), check=False)
    assert proc.returncode == 2 and "no Hugging Face token" in proc.stderr and "HF_TOKEN" in proc.stderr
    assert hub.requests == [] and not list((tmp_path / "tmp").iterdir())


def test_a_second_release_replaces_the_first_in_one_commit(catalog: Catalog, hub: FakeHub, tmp_path: Path) -> None:
    """Releases share a repo, one tag each: publishing another release removes the files the first one left
    under data/, assets/ and recipes/ in the same commit, and the first release stays readable at its tag."""
    create_release(catalog, "rel-reasoning", where="kind = 'reasoning' AND judges_failed = 0 AND "
                                                   "filters_failed = 0")
    env = hub_env(hub, tmp_path, _token())
    run_r1f("publish", "rel", "--repo-id", "org/many", "--catalog", str(catalog.root), env=env)
    hub.repos["org/many"]["branches"]["main"][-1]["tree"]["notes.md"] = ("regular", b"kept by hand")
    proc = run_r1f("publish", "rel-reasoning", "--repo-id", "org/many", "--catalog", str(catalog.root), env=env)
    # The chat run's shard and its recipe belonged to the first release only.
    _, runs = sql(catalog, "SELECT run_id FROM runs WHERE model = 'deepseek-v3'")
    gone = ["data/non_reasoning/train-00000-of-00001.parquet", f"recipes/generate-{runs[0][0]}.yaml"]
    assert "removing 2 files an earlier publish left" in proc.stderr
    commits = hub.commits("org/many")
    assert len(commits) == 2 and commits[1]["summary"] == "Publish release rel-reasoning"
    assert [p for k, p in commits[1]["operations"] if k == "deletedFile"] == gone
    first, second = hub.files("org/many", "rel"), hub.files("org/many", "rel-reasoning")
    assert all(p in first and p not in second for p in gone) and second["notes.md"] == b"kept by hand"
    assert yaml.safe_load(second["README.md"].decode().split("\n---\n", 1)[0][4:])["pretty_name"] == "rel-reasoning"
    assert hub.repos["org/many"]["tags"] == {"rel": commits[0]["oid"], "rel-reasoning": commits[1]["oid"]}
