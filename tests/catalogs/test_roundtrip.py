"""ingest → (judge/filter records) → release → export → datasets.load_dataset, and `r1f show` on the result."""
from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pytest

from catalogs import Catalog, CatalogError
from catalogs.ingest import IngestOptions, ingest
from catalogs.query import show, sql, stats
from releases.release import create_release, export_release

from .helpers import DATA, r1f, write_generations


def build(root: Path) -> tuple[Catalog, str]:
    """A catalog with prompts, imported generations, verdicts, filter decisions."""
    cat = Catalog(root / "cat")
    ingest(cat, DATA / "math_40.jsonl", IngestOptions(source="math"))
    gen_file = root / "gens.jsonl"
    write_generations(gen_file)
    rep = ingest(cat, gen_file, IngestOptions(source="mult", generations=True, model="deepseek-r1"))
    gens = cat.generations()
    # Verdicts and decisions as the judges and filters record them: by the catalog's public API.
    verdicts, decisions = [], []
    for row in gens.iter_rows(named=True):
        # Written by write_generations: sample 1 of each prompt boxes a wrong answer.
        i = int(re.search(r"compute (\d+) times", row["reasoning"]).group(1))
        ok = row["answer"].endswith(f"\\boxed{{{i * 7}}}.")
        verdicts.append({"generation_id": row["generation_id"], "judge": "math_accuracy", "judge_version": "1",
                         "score": float(ok), "passed": ok, "reason": "correct" if ok else "wrong_answer",
                         "details": {"expected": str(i * 7)}})
        decisions.append({"generation_id": row["generation_id"], "filter": "language_mixing", "filter_version": "1",
                          "params_hash": "h1", "passed": "思考" not in row["reasoning"],
                          "reason": "ok" if "思考" not in row["reasoning"] else "mixed_language: zh 0.02",
                          "value": 0.0})
    assert cat.add_verdicts(verdicts) == len(gens)
    assert cat.add_filter_decisions(decisions) == len(gens)
    return cat, rep.run_id


def test_generations_are_stored_with_their_parts(tmp_path: Path) -> None:
    cat, run_id = build(tmp_path)
    gens = cat.generations(run_id=run_id)
    assert len(gens) == 30
    split = gens.filter(gens["text"].str.starts_with("<think>"))
    row = split.row(0, named=True)
    assert row["reasoning"].startswith("Let me compute") and row["answer"].startswith("The answer is")
    # reasoning_content returned separately by the API is kept whole, CJK included.
    separate = [r for r in gens.iter_rows(named=True) if "思考" in (r["reasoning"] or "")]
    assert len(separate) == 10 and all(r["answer"].startswith("The answer is") for r in separate)


def test_roundtrip_release_export_load_dataset(tmp_path: Path) -> None:
    cat, _ = build(tmp_path)
    manifest = create_release(cat, "r1-math-v1")
    # sample index 1 failed the judge, index 2 failed the filter: 10 of 30 remain.
    assert manifest["members"] == 10 and manifest["by_source"] == {"mult": 10}
    reasons = {(e["why"], e["failed_judges"], e["failed_filters"]): e["generations"] for e in manifest["excluded"]}
    assert reasons == {("failed", "math_accuracy:wrong_answer", ""): 10,
                       ("failed", "", "language_mixing:mixed_language"): 10}
    # The manifest agrees with SQL over the catalog.
    cols, rows = sql(cat, "SELECT count(*) FROM release_members WHERE release_name = 'r1-math-v1'")
    assert rows[0][0] == 10

    for fmt, style in (("parquet", "messages"), ("jsonl", "prompt_completion"), ("hf", "messages")):
        out = export_release(cat, "r1-math-v1", tmp_path / f"export-{fmt}", fmt=fmt, style=style)
        if fmt == "hf":
            ds = datasets.load_dataset(str(out), split="train")
            assert (out / "manifest.json").exists() and "r1-math-v1" in (out / "README.md").read_text()
        else:
            ds = datasets.load_dataset("parquet" if fmt == "parquet" else "json", data_files=str(out), split="train")
        assert len(ds) == 10
        first = ds[0]
        if style == "messages":
            assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
            assert first["messages"][0]["content"].startswith("What is")
            assert first["messages"][1]["content"].startswith("<think>")
        else:
            assert first["prompt"][0]["role"] == "user" and first["completion"][0]["role"] == "assistant"
        assert first["generation_id"].startswith("g_") and first["reference_answer"] is not None


def test_export_refuses_to_overwrite_and_unknown_release(tmp_path: Path) -> None:
    cat, _ = build(tmp_path)
    create_release(cat, "rel")
    out = export_release(cat, "rel", tmp_path / "x.parquet")
    with pytest.raises(CatalogError, match="already exists"):
        export_release(cat, "rel", out)
    with pytest.raises(CatalogError, match="no release named 'nope'"):
        export_release(cat, "nope", tmp_path / "y.parquet")
    with pytest.raises(CatalogError, match="--format"):
        export_release(cat, "rel", tmp_path / "z", fmt="csv")


def test_release_is_deterministic_and_frozen(tmp_path: Path) -> None:
    a, _ = build(tmp_path / "a")
    b, _ = build(tmp_path / "b")
    ma, mb = create_release(a, "v1"), create_release(b, "v1")
    assert json.dumps(ma, sort_keys=True) == json.dumps(mb, sort_keys=True)
    _, ra = sql(a, "SELECT manifest, manifest_sha256 FROM releases")
    _, rb = sql(b, "SELECT manifest, manifest_sha256 FROM releases")
    assert ra == rb  # byte for byte
    assert create_release(a, "v1") == ma  # the same release again is a no-op
    with pytest.raises(CatalogError, match=r"v1 already exists with other members \(\d+ frozen, \d+ selected now\)"
                                           r".* new release name \(e.g. v1-v2\)"):
        create_release(a, "v1", where="judges_failed = 0")
    # New generations outside the selection: the same members, a manifest that would count more left out. The
    # frozen release stands as it was, byte for byte; a run that asks for it again is a no-op.
    mult = create_release(a, "mult", where="source = 'mult'")
    _, frozen = sql(a, "SELECT release_id, manifest FROM releases WHERE name = 'mult'")
    write_generations(tmp_path / "more.jsonl", n_prompts=2, per_prompt=1)
    ingest(a, tmp_path / "more.jsonl", IngestOptions(source="more", generations=True, model="deepseek-r1"))
    assert create_release(a, "mult", where="source = 'mult'") == mult
    assert sql(a, "SELECT release_id, manifest FROM releases WHERE name = 'mult'")[1] == frozen
    with pytest.raises(CatalogError, match="mult already exists with another selection"):
        create_release(a, "mult", where="source = 'mult' AND true")
    with pytest.raises(CatalogError, match="not a valid SQL predicate"):
        create_release(a, "v2", where="no_such_column = 1")
    with pytest.raises(CatalogError, match="no generation matches"):
        create_release(a, "v3", where="source = 'nothing'")


def test_reingest_is_idempotent(tmp_path: Path) -> None:
    cat, run_id = build(tmp_path)
    n_shards = len(list((cat.root / "shards").glob("*.parquet")))
    again = ingest(cat, DATA / "math_40.jsonl", IngestOptions(source="math"))
    assert again.prompts_added == 0 and again.prompts_already_present == 40
    rep = ingest(cat, tmp_path / "gens.jsonl", IngestOptions(source="mult", generations=True, model="deepseek-r1"))
    assert rep.generations_added == 0 and rep.generations_already_present == 30 and rep.run_id == run_id
    assert len(list((cat.root / "shards").glob("*.parquet"))) == n_shards  # no text stored twice
    s = stats(cat)
    assert (s["prompts"], s["generations"]) == (50, 30)
    # The ingest log grows by the two attempts; the data does not:
    _, rows = sql(cat, "SELECT count(*), count(DISTINCT generation_id) FROM generations")
    assert rows[0] == (30, 30)
    # Catalog-level dedup also holds inside one batch and across add_generations calls.
    g = cat.generations().row(0, named=True)
    assert cat.add_generations([dict(g, latency_s=None)]) == 0


def test_show_names_every_stage(tmp_path: Path) -> None:
    cat, run_id = build(tmp_path)
    create_release(cat, "v1")
    _, rows = sql(cat, "SELECT generation_id, prompt_id FROM release_members LIMIT 1")
    gid, pid = rows[0]
    data = show(cat, gid)
    assert data["prompt"]["source"] == "mult" and data["prompt"]["source_uri"].endswith("gens.jsonl")
    assert data["prompt"]["source_row"] >= 1 and data["prompt"]["source_format"] == "jsonl"
    assert data["run"]["run_id"] == run_id and data["run"]["model"] == "deepseek-r1"
    assert data["imported_from"].endswith("gens.jsonl") and data["source_row"] >= 1
    assert [v["judge"] for v in data["verdicts"]] == ["math_accuracy"]
    assert [f["filter"] for f in data["filter_decisions"]] == ["language_mixing"]
    assert [r["release_name"] for r in data["releases"]] == ["v1"]
    assert show(cat, pid)["releases"] == ["v1"]
    # The command itself, as a user runs it.
    out = r1f("show", gid, catalog=cat.root).stdout
    for needle in ("gens.jsonl", "row", "deepseek-r1", "math_accuracy", "language_mixing", "v1", run_id, pid):
        assert needle in out, needle
    js = json.loads(r1f("show", gid, "--json", catalog=cat.root).stdout)
    assert js["generation_id"] == gid and js["verdicts"][0]["passed"] is True
    missing = r1f("show", "g_000000000000000000000000", catalog=cat.root, check=False)
    assert missing.returncode == 2 and "no generation g_000000000000000000000000" in missing.stderr


def test_sql_and_stats_commands(tmp_path: Path) -> None:
    cat, _ = build(tmp_path)
    rows = json.loads(r1f("sql", "SELECT kind, count(*) AS n FROM prompts GROUP BY 1", "--json",
                          catalog=cat.root).stdout)
    assert rows == [{"kind": "reasoning", "n": 50}]
    texts = json.loads(r1f("sql", "SELECT count(*) AS n FROM generations WHERE reasoning LIKE '%思考%'", "--json",
                           catalog=cat.root).stdout)
    assert texts == [{"n": 10}]
    bad = r1f("sql", "DROP TABLE prompts", catalog=cat.root, check=False)
    assert bad.returncode == 2 and "read-only" in bad.stderr
    s = json.loads(r1f("stats", "--json", catalog=cat.root).stdout)
    assert s["generations"] == 30 and s["judges"][0]["accept_rate"] == pytest.approx(2 / 3, abs=1e-3)
    assert s["filter_reasons"] == [{"filter": "language_mixing", "reason": "mixed_language", "n": 10}]
    assert "mult" in r1f("stats", catalog=cat.root).stdout


def test_cli_roundtrip(tmp_path: Path) -> None:
    """The commands a user types, end to end, ending in datasets.load_dataset."""
    cat = tmp_path / "cat"
    r1f("ingest", str(DATA / "gsm8k_30.jsonl"), "--rename", "question=problem", "--source", "gsm8k", catalog=cat)
    write_generations(tmp_path / "g.jsonl", n_prompts=4)
    out = r1f("ingest", str(tmp_path / "g.jsonl"), "--generations", "--model", "r1", "--source", "mine", "--json",
              catalog=cat).stdout
    assert json.loads(out)["generations_added"] == 12
    r1f("release", "all", "--where", "true", catalog=cat)
    r1f("export", "all", "--format", "jsonl", "--out", str(tmp_path / "all.jsonl"), catalog=cat)
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "all.jsonl"), split="train")
    assert len(ds) == 12 and ds[0]["messages"][-1]["role"] == "assistant"


def test_iter_samples_streams_with_prompt_fields_and_skips_done_work(tmp_path: Path) -> None:
    cat, run_id = build(tmp_path)
    everything = cat.generations().sort("generation_id")
    seen = []
    for batch in cat.iter_samples(batch_rows=7):
        assert batch.height <= 7
        seen.extend(batch.iter_rows(named=True))
    assert len(seen) == 30
    by_id = {r["generation_id"]: r for r in seen}
    for row in everything.iter_rows(named=True):  # the same text, reasoning and answer as the SQL view
        mine = by_id[row["generation_id"]]
        assert (mine["text"], mine["reasoning"], mine["answer"]) == (row["text"], row["reasoning"], row["answer"])
        assert mine["problem"].startswith("What is") and mine["reference"] is not None and mine["source"] == "mult"
    assert any("思考" in r["reasoning"] for r in seen)  # code-point offsets hold for CJK text
    # Everything was judged by math_accuracy v1 in build(): nothing left to judge; a new version sees all.
    assert sum(b.height for b in cat.iter_samples(without=("verdict", "math_accuracy", "1"))) == 0
    assert sum(b.height for b in cat.iter_samples(without=("verdict", "math_accuracy", "2"))) == 30
    assert sum(b.height for b in cat.iter_samples(without=("filter", "language_mixing", "1", "h1"))) == 0
    assert sum(b.height for b in cat.iter_samples(without=("filter", "language_mixing", "1", "h2"))) == 30
    assert sum(b.height for b in cat.iter_samples(where="source = 'nope'")) == 0
    with pytest.raises(CatalogError, match="not a valid SQL predicate"):
        next(cat.iter_samples(where="nonsense_column = 1"))


def test_the_catalog_order_is_the_commit_order(tmp_path: Path) -> None:
    """Order-keeping stages (dedup keeps the first of two equal texts, a rewrite stage writes in the order it reads)
    stream in catalog order: a run committed in several batches must come back in the order it was committed, on
    every run, not in the order of random shard names (with eight batches that order is right 1 time in 40,320)."""
    cat, _ = build(tmp_path)
    prompt = cat.generations().row(0, named=True)["prompt_id"]
    ids = [f"g_order_{i:03d}" for i in range(24)]
    for batch in range(8):
        cat.add_generations([{"generation_id": g, "prompt_id": prompt, "run_id": "r_order", "sample_index": i,
                              "text": f"sample {i}"} for i, g in enumerate(ids) if i // 3 == batch])
    got = [g for frame in cat.iter_samples(where="run_id = 'r_order'", batch_rows=5)
           for g in frame["generation_id"].to_list()]
    assert got == ids
