"""`r1f ingest hf://datasets/ORG/NAME` through the real `datasets` and huggingface_hub clients against a local
fake of the Hub's HTTP API (tests/fakehub.py): configs, splits, revisions, Parquet and JSON Lines, the commit sha
as provenance, the offline cache, gated and missing datasets, and a published release read back."""
from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from tests.catalogs.helpers import R1F, write_generations
from tests.fakehub import FakeHub, hub_env

CARD = b"""---
configs:
- config_name: easy
  data_files:
  - split: train
    path: easy/train-*.parquet
  - split: test
    path: easy/test-*.parquet
- config_name: hard
  data_files:
  - split: train
    path: hard/train-*.parquet
  - split: test
    path: hard/test-*.parquet
---
# Math, two configs
"""


def _parquet(rows: list[dict]) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def _math(config: str, split: str, n: int, offset: int = 0) -> bytes:
    return _parquet([{"problem": f"[{config}/{split}] What is {i} + {offset}?", "answer": str(i + offset)}
                     for i in range(n)])


def _math_dataset(hub: FakeHub) -> tuple[str, str]:
    """org/math: two configs of two splits each; a second commit changes easy/train. Both commit oids."""
    first = hub.add_dataset("org/math", {"README.md": CARD, "easy/train-0.parquet": _math("easy", "train", 5),
                                         "easy/test-0.parquet": _math("easy", "test", 2),
                                         "hard/train-0.parquet": _math("hard", "train", 4),
                                         "hard/test-0.parquet": _math("hard", "test", 3)})
    second = hub.add_dataset("org/math", {"easy/train-0.parquet": _math("easy", "train", 6, offset=100)},
                             summary="more")
    return first, second


def r1f(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([*R1F, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "250", **env})
    if check and proc.returncode != 0:
        raise AssertionError(f"r1f {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _rows(cat: Path, query: str) -> list[tuple]:
    con = duckdb.connect(str(cat / "catalog.duckdb"), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_configs_splits_revisions_and_the_sha_as_provenance(hub: FakeHub, tmp_path: Path) -> None:
    first, second = _math_dataset(hub)
    hub.add_dataset("org/chat", {"train.jsonl": b"".join(
        json.dumps({"prompt": f"Say hello {i}", "kind": "non_reasoning"}).encode() + b"\n" for i in range(3))})
    env = hub_env(hub, tmp_path, None)
    cat = tmp_path / "cat"
    out = r1f("ingest", "hf://datasets/org/math", "--config", "easy", "--split", "train", "--json",
              "--catalog", str(cat), env=env)
    report = json.loads(out.stdout)
    assert report["format"] == "hub" and report["prompts_added"] == 6 and report["source"] == "math"
    assert report["file"] == f"hf://datasets/org/math@{second}?config=easy&split=train"
    # An older revision, by commit: its own rows and its own sha.
    r1f("ingest", "hf://datasets/org/math", "--config", "easy", "--split", "train", "--revision", first,
        "--source", "math-v1", "--catalog", str(cat), env=env)
    r1f("ingest", "hf://datasets/org/math", "--config", "hard", "--split", "test", "--source", "hard",
        "--catalog", str(cat), env=env)
    r1f("ingest", "hf://datasets/org/chat", "--catalog", str(cat), env=env)  # JSON Lines, one split
    got = _rows(cat, "SELECT source, count(*), min(source_uri), max(source_uri) FROM prompts GROUP BY 1 ORDER BY 1")
    assert got == [
        ("chat", 3, *[f"hf://datasets/org/chat@{hub.repos['org/chat']['branches']['main'][-1]['oid']}"] * 2),
        ("hard", 3, *[f"hf://datasets/org/math@{second}?config=hard&split=test"] * 2),
        ("math", 6, *[f"hf://datasets/org/math@{second}?config=easy&split=train"] * 2),
        ("math-v1", 5, *[f"hf://datasets/org/math@{first}?config=easy&split=train"] * 2)]
    assert _rows(cat, "SELECT count(*) FROM prompts WHERE source = 'math-v1' AND answer = '104'") == [(0,)]
    pid = _rows(cat, "SELECT prompt_id FROM prompts WHERE source = 'math-v1' LIMIT 1")[0][0]
    shown = r1f("show", pid, "--catalog", str(cat), env=env).stdout
    assert f"@{first}" in shown

    # Several configs or splits and none chosen: refused, naming them.
    proc = r1f("ingest", "hf://datasets/org/math", "--catalog", str(cat), env=env, check=False)
    assert proc.returncode == 2 and "several configs (easy, hard)" in proc.stderr and "--config" in proc.stderr
    proc = r1f("ingest", "hf://datasets/org/math", "--config", "easy", "--catalog", str(cat), env=env, check=False)
    assert proc.returncode == 2 and "several splits" in proc.stderr and "--split" in proc.stderr

    # Offline: what is cached ingests with no request to the Hub; what is not gets the fix.
    before = len(hub.requests)
    offline = {**env, "HF_HUB_OFFLINE": "1"}
    report = json.loads(r1f("ingest", "hf://datasets/org/math", "--config", "hard", "--split", "test", "--json",
                            "--catalog", str(tmp_path / "offline"), env=offline).stdout)
    assert report["prompts_added"] == 3 and report["file"].startswith(f"hf://datasets/org/math@{second}")
    hub.add_dataset("org/never-fetched", {"train.jsonl": b'{"problem": "x"}\n'})
    proc = r1f("ingest", "hf://datasets/org/never-fetched", "--catalog", str(tmp_path / "offline"), env=offline,
               check=False)
    assert proc.returncode == 2 and "not in the local Hugging Face cache" in proc.stderr
    assert "HF_HUB_OFFLINE" in proc.stderr and len(hub.requests) == before


def test_gated_missing_and_a_bad_revision_are_one_line_errors(hub: FakeHub, tmp_path: Path) -> None:
    hub.add_dataset("org/gated", {"train.jsonl": b'{"problem": "x"}\n'}, gated=True)
    _math_dataset(hub)
    env = hub_env(hub, tmp_path, None)
    cat = tmp_path / "cat"
    for source, extra, message in [
        ("hf://datasets/org/gated", [], "hf://datasets/org/gated is gated: accept its conditions"),
        ("hf://datasets/org/missing", [], "hf://datasets/org/missing: no such dataset on the Hub, or it is private"),
        ("hf://datasets/org/math", ["--revision", "v9"], "no such branch, tag or commit; check --revision"),
    ]:
        proc = r1f("ingest", source, *extra, "--catalog", str(cat), env=env, check=False)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr  # one line says it (the others are the client's INFO log)
        assert any(line.startswith("error: ") and message in line for line in proc.stderr.splitlines()), proc.stderr
    assert "HF_TOKEN" in r1f("ingest", "hf://datasets/org/gated", "--catalog", str(cat), env=env,
                             check=False).stderr
    assert not cat.exists()  # a failed first ingest leaves no catalog behind


def test_a_published_release_read_back_keeps_its_generation_ids(hub: FakeHub, tmp_path: Path) -> None:
    env = hub_env(hub, tmp_path, None)
    made = tmp_path / "made"
    gens = tmp_path / "gens.jsonl"
    write_generations(gens, n_prompts=4, per_prompt=2)
    r1f("ingest", str(gens), "--generations", "--model", "deepseek-r1", "--catalog", str(made), env=env)
    r1f("release", "rel", "--catalog", str(made), env=env)
    folder = tmp_path / "published"
    r1f("publish", "rel", "--repo-id", "org/rel", "--out", str(folder), "--catalog", str(made), env=env)
    hub.add_dataset("org/rel", {p.relative_to(folder).as_posix(): p.read_bytes()
                                for p in folder.rglob("*") if p.is_file()})
    published = {g for (g,) in _rows(made, "SELECT generation_id FROM release_members WHERE release_name = 'rel'")}

    cat = tmp_path / "cat"
    r1f("ingest", "hf://datasets/org/rel", "--config", "all", "--split", "train", "--generations", "--model",
        "deepseek-r1", "--catalog", str(cat), env=env)
    rows = _rows(cat, "SELECT g.generation_id, g.published_id, p.answer, p.messages FROM generation_meta g "
                      "JOIN prompts p USING (prompt_id)")
    assert {r[1] for r in rows} == published and len(rows) == len(published)
    assert all(r[0] not in published for r in rows)  # this catalog's ids are its own content hashes
    assert all("assistant" not in r[3] for r in rows)  # the prompt's turns only; the reference is the answer
    answers = dict(_rows(made, "SELECT prompt_id, answer FROM prompts"))
    assert {r[2] for r in rows} <= set(answers.values())
    shown = r1f("show", rows[0][0], "--catalog", str(cat), env=env).stdout
    assert f"published as {rows[0][1]}" in shown
