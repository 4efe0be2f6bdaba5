"""`r1f publish`: the Hub folder read back by `datasets.load_dataset` for every config and checked against the
catalog, and the upload through the real huggingface_hub client against a local server speaking the part of
the Hub's HTTP API it uses (create repo, branch, validate-yaml, preupload, LFS batch and upload, commit, tag,
revision info; tests/fakehub.py).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import subprocess
from pathlib import Path
from typing import Any

import datasets
import pytest
import yaml

from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest
from catalogs.query import sql
from releases.release import create_release

from tests.catalogs.helpers import DATA, R1F, write_generations
from tests.fakehub import FakeHub, hub_env

ODD_SOURCE = "web: forum\nposts #1 'quoted' | piped"


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
