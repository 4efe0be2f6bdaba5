"""Releases (frozen, named selections with a manifest) and their export in the formats trl reads."""
from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, ConfigDict, Field

from catalogs import schema
from catalogs.accounting import ACCEPTED, CANDIDATES_SQL, cost_facts
from catalogs.ids import canonical_json, content_hash
from catalogs.store import Catalog, CatalogError, code_version, one_row

DEFAULT_SELECTION = "judges_failed = 0 AND filters_failed = 0"



def _grouped(con: duckdb.DuckDBPyConnection, column: str) -> dict[str, int]:
    return {str(k): int(n) for k, n in con.execute(
        f"SELECT {column}, count(*) FROM selected GROUP BY 1 ORDER BY 1").fetchall()}


class ReleaseRecipe(BaseModel):
    """The paper's release: per prompt up to `per_prompt` correct samples, mixed to totals or a ratio."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    description: str | None = None
    # Extra SQL predicate over the candidates (see `r1f release --help` for the columns).
    where: str | None = None
    per_prompt: int = Field(default=1, ge=1)
    # Which correct samples of a prompt to keep: the shortest (the paper favours concise CoTs), or a seeded draw.
    prefer: Literal["shortest", "longest", "random"] = "shortest"
    # Reasoning samples must carry at least one verdict (all passed); non-reasoning ones need none.
    require_judged: bool = True
    reasoning: int | None = Field(default=600_000, ge=0)
    non_reasoning: int | None = Field(default=200_000, ge=0)
    # Instead of totals: the reasoning share of the mix (0.75 is 600k:200k); uses as much data as the ratio allows.
    reasoning_share: float | None = Field(default=None, gt=0, lt=1)
    seed: int = 0
    # Judges whose newest verdict must exist and pass, e.g. [human]: only what a person approved (r1f review).
    require_judges: list[str] = Field(default_factory=list)


def _selection_sql(recipe: ReleaseRecipe) -> str:
    order = {"shortest": "text_chars ASC, generation_id", "longest": "text_chars DESC, generation_id",
             "random": f"md5('{recipe.seed}:' || generation_id)"}[recipe.prefer]
    judged = "(kind = 'non_reasoning' OR judged > 0)" if recipe.require_judged else "true"
    extra = f" AND ({recipe.where})" if recipe.where else ""
    if recipe.require_judges:
        names = ", ".join("'" + j.replace("'", "''") + "'" for j in recipe.require_judges)
        extra += f" AND list_has_all(passed_judges, [{names}])"
    return (f"SELECT * FROM candidates WHERE {DEFAULT_SELECTION} AND {judged}{extra} "
            f"QUALIFY row_number() OVER (PARTITION BY prompt_id ORDER BY {order}) <= {recipe.per_prompt}")


def create_release(catalog: Catalog, name: str, where: str | None = None,
                   recipe: ReleaseRecipe | None = None) -> dict[str, Any]:
    """Freeze the generations matching `where` (default: passed every judge and filter) under `name`,
    or, with a recipe, the paper's per-prompt selection and reasoning/non-reasoning mix.

    The same catalog state and selection always give the same manifest, byte for byte.
    """
    if not name or not all(c.isalnum() or c in "-_." for c in name):
        raise CatalogError(f"release name {name!r}: use letters, digits, '-', '_' and '.' only.")
    if recipe is not None and where:
        raise CatalogError("give the selection either with --where or in the recipe's `where`, not both.")
    selection = where or DEFAULT_SELECTION
    mix: dict[str, Any] = {}
    with catalog.connect(write=True) as con:
        con.execute(f"CREATE TEMP VIEW candidates AS {CANDIDATES_SQL}")
        try:
            if recipe is None:
                con.execute(f"CREATE TEMP TABLE selected AS SELECT * FROM candidates WHERE {selection} "
                            f"ORDER BY generation_id")
            else:
                selection = _selection_sql(recipe)
                con.execute(f"CREATE TEMP TABLE eligible AS {selection}")
                mix = _mix(con, recipe)
        except duckdb.Error as exc:
            raise CatalogError(f"--where `{selection}` is not a valid SQL predicate over the release candidates "
                               f"(columns: generation_id, prompt_id, run_id, source, kind, domain, language, model, "
                               f"finish_reason, completion_tokens, judged, judges_failed, filtered, filters_failed): "
                               f"{str(exc).splitlines()[0]}") from None
        ids = [r[0] for r in con.execute("SELECT generation_id FROM selected ORDER BY generation_id").fetchall()]
        if not ids:
            raise CatalogError(f"release {name}: no generation matches `{selection}`; check `r1f stats` and "
                               f"`r1f sql \"SELECT count(*) FROM generations\"`.")
        unjudged = "kind = 'reasoning' AND judged = 0" if recipe is not None and recipe.require_judged else "false"
        excluded = con.execute(
            "SELECT CASE WHEN failed_judges IS NOT NULL OR failed_filters IS NOT NULL THEN 'failed' "
            f"WHEN {unjudged} THEN 'not_judged' ELSE 'not_selected' END AS why, "
            "coalesce(array_to_string(failed_judges, ','), '') AS j, "
            "coalesce(array_to_string(failed_filters, ','), '') AS f, count(*) FROM candidates "
            "ANTI JOIN selected USING (generation_id) GROUP BY ALL ORDER BY ALL").fetchall()
        manifest = {
            "name": name,
            "selection": selection,
            "recipe": recipe.model_dump(mode="json") if recipe else None,
            "mix": mix or None,
            "schema_version": schema.SCHEMA_VERSION,
            "members": len(ids),
            "members_sha256": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
            "prompts": one_row(con.execute("SELECT count(DISTINCT prompt_id) FROM selected"))[0],
            "by_kind": _grouped(con, "kind"),
            "by_source": _grouped(con, "source"),
            "by_domain": _grouped(con, "domain"),
            "by_language": _grouped(con, "language"),
            "by_model": _grouped(con, "model"),
            # Why the other generations are not in it: failed (which judges and filters), not_judged, or
            # not_selected (outside --where, over the per-prompt cap, or not drawn for the mix).
            "excluded": [{"why": w, "failed_judges": j, "failed_filters": f, "generations": n}
                         for w, j, f, n in excluded],
        }
        text = canonical_json(manifest)
        digest = hashlib.sha256(text.encode()).hexdigest()
        existing = con.execute("SELECT manifest_sha256 FROM releases WHERE name = ?", [name]).fetchone()
        if existing:
            if existing[0] == digest:
                return manifest  # the same release again: nothing to do
            raise CatalogError(f"release {name} already exists with other members; releases are frozen. "
                               f"Pick a new name (e.g. {name}-v2).")
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO releases (name, release_id, selection, recipe, manifest, manifest_sha256, members) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [name, "rel_" + content_hash("release", text), selection,
                     canonical_json(manifest["recipe"]), text, digest,
                     len(ids)])
        con.execute("INSERT INTO release_members (release_name, position, generation_id, prompt_id) "
                    "SELECT ?, row_number() OVER (ORDER BY generation_id) - 1, generation_id, prompt_id "
                    "FROM selected", [name])
        con.execute("COMMIT")
    return manifest


def share_counts(n_r: int, n_nr: int, share: float) -> tuple[int, int]:
    """The mix of at most `n_r` reasoning and `n_nr` non-reasoning samples for a reasoning `share`:
    (reasoning, non_reasoning). All of the scarcer kind, and the other kind's count rounded from the share, as
    close to it as whole samples get (the reasoning count is then the total times the share, rounded). With 2
    reasoning samples at 0.75 that is 2 + 1 (never 2 + 0: a "mix" of reasoning alone); with no sample of a kind,
    nothing."""
    if not n_r or not n_nr:
        return 0, 0
    if n_r * (1 - share) <= n_nr * share:  # reasoning is the scarcer kind
        return n_r, min(n_nr, round(n_r * (1 - share) / share))
    return min(n_r, round(n_nr * share / (1 - share))), n_nr


def _mix(con: duckdb.DuckDBPyConnection, recipe: ReleaseRecipe) -> dict[str, Any]:
    """Draw each kind's share from `eligible` into `selected`, deterministically from the seed."""
    available = dict(con.execute("SELECT kind, count(*) FROM eligible GROUP BY kind").fetchall())
    n_r, n_nr = available.get("reasoning", 0), available.get("non_reasoning", 0)
    if recipe.reasoning_share is not None:
        want_r, want_nr = share_counts(n_r, n_nr, recipe.reasoning_share)
    else:
        want_r = n_r if recipe.reasoning is None else min(n_r, recipe.reasoning)
        want_nr = n_nr if recipe.non_reasoning is None else min(n_nr, recipe.non_reasoning)
    con.execute(f"""CREATE TEMP TABLE selected AS
        SELECT * FROM (
          SELECT *, row_number() OVER (PARTITION BY kind ORDER BY md5('{recipe.seed}:' || generation_id)) AS draw
          FROM eligible)
        WHERE (kind = 'reasoning' AND draw <= {want_r}) OR (kind = 'non_reasoning' AND draw <= {want_nr})
        ORDER BY generation_id""")
    return {"requested": {"reasoning": recipe.reasoning, "non_reasoning": recipe.non_reasoning,
                          "reasoning_share": recipe.reasoning_share},
            "available": {"reasoning": n_r, "non_reasoning": n_nr},
            "selected": {"reasoning": want_r, "non_reasoning": want_nr}}


def get_manifest(catalog: Catalog, name: str) -> dict[str, Any]:
    with catalog.connect() as con:
        row = con.execute("SELECT manifest FROM releases WHERE name = ?", [name]).fetchone()
        if row is None:
            names = [r[0] for r in con.execute("SELECT name FROM releases ORDER BY name").fetchall()]
            raise CatalogError(f"no release named {name!r}; releases: {', '.join(names) or 'none yet (r1f release)'}.")
    return json.loads(row[0])


# ---------------------------------------------------------------------------------------------- facts
# A prompt's difficulty, where its source gave one (MATH's level, DeepScaleR's difficulty).
DIFFICULTY = ("coalesce(json_extract_string(p.metadata, '$.difficulty'), json_extract_string(p.metadata, "
              "'$.level'), 'not given')")

def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _dict_rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _members_by(con: duckdb.DuckDBPyConnection, column: str) -> dict[str, int]:
    return {str(k): int(n) for k, n in con.execute(
        f"SELECT {column}, count(*) FROM members GROUP BY 1 ORDER BY 2 DESC, 1").fetchall()}


def release_facts(catalog: Catalog, name: str | None = None, distributions: bool = False) -> dict[str, Any]:
    """The card's and the report's figures for release `name`, or for the whole catalog when `name` is None.

    The scope of judge, filter and sampling figures is every generation of the runs the release draws from
    (for the whole catalog: every generation), so the card says what was made and what was kept.
    With `distributions`, also the per-sample values the report plots (CoT lengths, tokens, pass rates).
    """
    manifest = get_manifest(catalog, name) if name else None
    with catalog.reader() as con:
        con.execute(f"CREATE TEMP VIEW candidates AS {CANDIDATES_SQL}")
        if name:
            rel = _lit(name)
            con.execute(f"CREATE TEMP TABLE member_ids AS SELECT generation_id FROM release_members "
                        f"WHERE release_name = {rel}")
            con.execute("CREATE TEMP TABLE members AS SELECT c.* FROM candidates c SEMI JOIN member_ids "
                        "USING (generation_id)")
            con.execute("CREATE TEMP TABLE scope AS SELECT * FROM candidates WHERE run_id IN "
                        "(SELECT DISTINCT run_id FROM members)")
        else:
            con.execute("CREATE TEMP TABLE scope AS SELECT * FROM candidates")
            con.execute(f"CREATE TEMP TABLE members AS SELECT * FROM scope WHERE {ACCEPTED}")
        facts: dict[str, Any] = {"name": name, "code_version": code_version()}
        facts["example_id"] = one_row(con.execute("SELECT min(generation_id) FROM members"))[0]
        if name:
            row = one_row(con.execute(
                f"SELECT manifest_sha256, members, created_at FROM releases WHERE name = {rel}"))
            facts.update(manifest=manifest, manifest_sha256=row[0], created_at=str(row[2]))
        facts["members"] = one_row(con.execute("SELECT count(*) FROM members"))[0]
        facts["prompts"] = one_row(con.execute("SELECT count(DISTINCT prompt_id) FROM members"))[0]
        facts["scope_generations"] = one_row(con.execute("SELECT count(*) FROM scope"))[0]
        for key, column in (("by_kind", "kind"), ("by_source", "source"), ("by_domain", "domain"),
                            ("by_language", "language"), ("by_model", "model")):
            facts[key] = _members_by(con, column)
        facts["runs"] = [dict(r, sampling=json.loads(r["sampling"] or "{}")) for r in _dict_rows(con, """
            SELECT r.run_id, r.kind, r.model, r.backend, r.template, r.template_version, r.sampling,
                   r.code_version, count(s.generation_id) AS generations,
                   count(s.generation_id) FILTER (WHERE s.generation_id IN (SELECT generation_id FROM members))
                     AS in_release
            FROM runs r JOIN scope s USING (run_id) GROUP BY ALL ORDER BY r.run_id""")]
        facts["judges"] = _dict_rows(con, """
            SELECT judge, string_agg(DISTINCT judge_version, ', ' ORDER BY judge_version) AS versions,
                   count(*) AS judged, sum(passed::INT) AS passed, round(avg(passed::INT), 4) AS accept_rate
            FROM (SELECT * FROM verdicts SEMI JOIN scope USING (generation_id)
                  QUALIFY row_number() OVER (PARTITION BY generation_id, judge
                                             ORDER BY created_at DESC, judge_version DESC) = 1)
            GROUP BY judge ORDER BY judge""")
        facts["filters"] = [dict(r, params=json.loads(r["params"] or "{}")) for r in _dict_rows(con, """
            SELECT filter, string_agg(DISTINCT filter_version, ', ' ORDER BY filter_version) AS versions,
                   max(params) AS params, count(*) AS decided, count(*) FILTER (WHERE NOT passed) AS dropped,
                   round(avg(passed::INT), 4) AS pass_rate
            FROM (SELECT * FROM filter_decisions SEMI JOIN scope USING (generation_id)
                  QUALIFY row_number() OVER (PARTITION BY generation_id, filter
                                             ORDER BY created_at DESC, filter_version DESC) = 1)
            GROUP BY filter ORDER BY filter""")]
        facts["drop_reasons"] = _dict_rows(con, """
            SELECT 'judge' AS stage, judge AS name, reason, count(*) AS generations
            FROM (SELECT * FROM verdicts SEMI JOIN scope USING (generation_id)
                  QUALIFY row_number() OVER (PARTITION BY generation_id, judge
                                             ORDER BY created_at DESC, judge_version DESC) = 1)
            WHERE NOT passed GROUP BY ALL
            UNION ALL
            SELECT 'filter', filter, split_part(reason, ':', 1), count(*)
            FROM (SELECT * FROM filter_decisions SEMI JOIN scope USING (generation_id)
                  QUALIFY row_number() OVER (PARTITION BY generation_id, filter
                                             ORDER BY created_at DESC, filter_version DESC) = 1)
            WHERE NOT passed GROUP BY ALL
            ORDER BY generations DESC, stage, name, reason""")
        facts["sampling"] = _dict_rows(con, """
            SELECT run_id, count(*) AS prompts, count(*) FILTER (WHERE status = 'solved') AS solved,
                   count(*) FILTER (WHERE status = 'unsolved') AS unsolved,
                   count(*) FILTER (WHERE status NOT IN ('solved', 'unsolved')) AS open,
                   sum(samples) AS samples, sum(accepted) AS accepted,
                   round(sum(accepted) / nullif(sum(samples), 0), 4) AS accept_rate,
                   round(avg(pass_rate), 4) AS mean_pass_rate, sum(tokens) AS tokens,
                   round(sum(tokens) / nullif(sum(accepted), 0), 1) AS tokens_per_accepted
            FROM prompt_stats WHERE run_id IN (SELECT DISTINCT run_id FROM scope)
            GROUP BY run_id ORDER BY run_id""")
        accepted = f"count(*) FILTER (WHERE {ACCEPTED})"
        facts["accept_by_source"] = _dict_rows(con, f"""
            SELECT source, count(*) AS generations, {accepted} AS accepted,
                   round({accepted} / count(*), 4) AS accept_rate
            FROM scope GROUP BY source ORDER BY source""")
        facts["accept_by_difficulty"] = _dict_rows(con, f"""
            SELECT {DIFFICULTY} AS difficulty, count(*) AS generations, {accepted} AS accepted,
                   round({accepted} / count(*), 4) AS accept_rate
            FROM scope s JOIN (SELECT prompt_id, metadata FROM prompts) p USING (prompt_id) GROUP BY 1 ORDER BY 1""")
        facts["tokens"] = _dict_rows(con, f"""
            SELECT model, sum(completion_tokens) AS completion_tokens, {accepted} AS accepted,
                   round(sum(completion_tokens) / nullif({accepted}, 0), 1) AS tokens_per_accepted
            FROM scope GROUP BY model ORDER BY model""")
        facts["cot_chars"] = _dict_rows(con, """
            SELECT domain, count(*) AS samples, median(reasoning_chars)::BIGINT AS median,
                   quantile_disc(reasoning_chars, 0.9) AS p90, max(reasoning_chars) AS max
            FROM members WHERE reasoning_chars > 0 GROUP BY domain ORDER BY domain""")
        facts["cost"] = cost_facts(con)
        facts["contamination"] = _contamination(con)
        from catalogs.calibration import figures as calibration_figures

        facts["calibration"] = calibration_figures(con, kept_sql="SELECT generation_id FROM member_ids" if name
                                                   else None)
        if distributions:
            facts["dist"] = {
                "cot_chars_by_domain": {d: v for d, v in con.execute(
                    "SELECT domain, list(reasoning_chars ORDER BY generation_id) FROM members "
                    "WHERE reasoning_chars > 0 GROUP BY domain ORDER BY domain").fetchall()},
                "completion_tokens": [r[0] for r in con.execute(
                    "SELECT completion_tokens FROM members WHERE completion_tokens IS NOT NULL "
                    "ORDER BY generation_id").fetchall()],
                "pass_rates": [r[0] for r in con.execute(
                    "SELECT pass_rate FROM prompt_stats WHERE run_id IN (SELECT DISTINCT run_id FROM scope) "
                    "AND pass_rate IS NOT NULL ORDER BY prompt_id, run_id").fetchall()],
            }
    return facts



def _contamination(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Per benchmark the decontamination filter checked (in scope, its newest decisions): the method and how many
    prompts it caused to be dropped."""
    from filters.decontamination import NAME, benchmark_name

    rows = con.execute(f"""
        SELECT f.params, s.prompt_id, f.passed, f.reason
        FROM (SELECT * FROM filter_decisions SEMI JOIN scope USING (generation_id) WHERE filter = {_lit(NAME)}
              QUALIFY row_number() OVER (PARTITION BY generation_id ORDER BY created_at DESC, filter_version DESC) = 1) f
        JOIN scope s USING (generation_id) ORDER BY ALL""").fetchall()
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for params_json, prompt_id, passed, reason in rows:
        params = json.loads(params_json or "{}")
        method = f"{params.get('n', '?')}-gram word overlap on the {params.get('field', 'problem')}"
        for bench in sorted({benchmark_name(f) for f in params.get("benchmark_files") or []}):
            b = out.setdefault((bench, method), {"benchmark": bench, "method": method, "checked": set(),
                                                 "dropped": set()})
            b["checked"].add(prompt_id)
            if not passed and str(reason).startswith(f"contaminated: {bench}#"):
                b["dropped"].add(prompt_id)
    return [{"benchmark": b["benchmark"], "method": b["method"], "prompts_checked": len(b["checked"]),
             "prompts_dropped": len(b["dropped"])} for b in out.values()]


EXPORT_FORMATS = ("parquet", "jsonl", "hf")
# messages and prompt_completion are the two formats trl's trainers read; hub is both of them plus every column
# a Hub user expects (the split text, reference, provenance, verdict scores), what `r1f publish` uploads.
EXPORT_STYLES = ("messages", "prompt_completion", "hub")
MESSAGES_TYPE = '[{"role":"VARCHAR","content":"VARCHAR"}]'
VERDICT_TYPE = "STRUCT(judge VARCHAR, version VARCHAR, score DOUBLE, passed BOOLEAN, reason VARCHAR)[]"
# Raw text per Parquet shard of an hf export (zstd makes the files several times smaller).
SHARD_TEXT_BYTES = 300_000_000


def _export_sql(name: str, style: str, where: str = "true") -> str:
    prompt = f"from_json(p.messages, '{MESSAGES_TYPE}')"
    completion = "[{'role': 'assistant', 'content': t.text}]"
    if style == "messages":
        columns = f"list_concat({prompt}, {completion}) AS messages"
    elif style == "prompt_completion":
        columns = f"{prompt} AS prompt, {completion} AS completion"
    else:
        columns = f"list_concat({prompt}, {completion}) AS messages, {prompt} AS prompt, {completion} AS completion"
    rel = _lit(name)
    if style != "hub":
        return (f"SELECT {columns}, m.generation_id, m.prompt_id, p.source, p.kind, p.domain, p.language, "
                f"p.answer AS reference_answer, t.reasoning, t.answer "
                f"FROM ({_members_sql(rel)}) m JOIN prompts p USING (prompt_id) "
                f"JOIN generation_texts t USING (generation_id) WHERE {where} ORDER BY m.position")
    # Each judge's newest verdict, as in release selection.
    verdicts = (f"SELECT generation_id, list({{'judge': judge, 'version': judge_version, 'score': score, "
                f"'passed': passed, 'reason': reason}} ORDER BY judge) AS verdicts "
                f"FROM (SELECT * FROM verdicts WHERE generation_id IN "
                f"(SELECT generation_id FROM release_members WHERE release_name = {rel}) "
                f"QUALIFY row_number() OVER (PARTITION BY generation_id, judge "
                f"ORDER BY created_at DESC, judge_version DESC) = 1) GROUP BY generation_id")
    return (f"SELECT {columns}, t.reasoning, t.answer, p.answer AS reference, p.source, p.kind, p.domain, "
            f"p.language, r.model, m.generation_id, m.prompt_id, g.run_id, "
            f"coalesce(v.verdicts, []::{VERDICT_TYPE}) AS verdicts "
            f"FROM ({_members_sql(rel)}) m JOIN prompts p USING (prompt_id) "
            f"JOIN generation_texts t USING (generation_id) JOIN generation_meta g USING (generation_id) "
            f"LEFT JOIN runs r ON r.run_id = g.run_id LEFT JOIN ({verdicts}) v USING (generation_id) "
            f"WHERE {where} ORDER BY m.position")


def _members_sql(rel: str) -> str:
    """Members with their position within their kind, so each kind's rows can be cut into shards."""
    return (f"SELECT m.*, row_number() OVER (PARTITION BY pk.kind ORDER BY m.position) - 1 AS kind_position "
            f"FROM release_members m JOIN (SELECT prompt_id, kind FROM prompts) pk USING (prompt_id) "
            f"WHERE m.release_name = {rel}")


def export_release(catalog: Catalog, name: str, out: str | Path, fmt: str = "parquet",
                   style: str = "messages", overwrite: bool = False, *, repo_id: str | None = None,
                   license: str = "unknown", figures: dict[str, bytes] | None = None) -> Path:
    """Write a release as chat `messages` or `prompt`/`completion` rows, the two formats trl's trainers read,
    or (`hub`) both with every column a Hub user expects.

    `hf` writes the Hub's dataset layout: Parquet shards under `data/<kind>/`, configs `all` (default),
    `reasoning` and `non_reasoning`, a dataset card whose every figure comes from the catalog, the manifest
    byte for byte, and the recipes. `figures` (title of a PNG → its bytes) go under `assets/` and into the card.
    """
    if fmt not in EXPORT_FORMATS:
        raise CatalogError(f"--format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}.")
    if style not in EXPORT_STYLES:
        raise CatalogError(f"--style {style!r}: use one of {', '.join(EXPORT_STYLES)}.")
    get_manifest(catalog, name)  # a clear error for an unknown release, before anything is written
    out = Path(out)
    if out.exists() and not overwrite:
        raise CatalogError(f"{out} already exists; choose another --out or pass --overwrite.")
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        if fmt == "hf":
            _write_hub_folder(catalog, name, tmp, style, repo_id=repo_id, license=license, figures=figures)
        else:
            with catalog.reader() as con:
                options = "FORMAT parquet, COMPRESSION zstd" if fmt == "parquet" else "FORMAT json"
                con.execute(f"COPY ({_export_sql(name, style)}) TO {_lit(str(tmp))} ({options})")
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    return out


def _write_hub_folder(catalog: Catalog, name: str, folder: Path, style: str, *, repo_id: str | None,
                      license: str, figures: dict[str, bytes] | None) -> None:
    import pyarrow.parquet as pq
    from datasets import Features

    from .card import render_card

    facts = release_facts(catalog, name)
    configs: list[dict[str, Any]] = []
    schema_ = None
    with catalog.reader() as con:
        kinds = con.execute(
            f"SELECT p.kind, count(*), sum(g.text_chars) FROM release_members m JOIN prompts p USING (prompt_id) "
            f"JOIN generation_meta g USING (generation_id) WHERE m.release_name = {_lit(name)} "
            f"GROUP BY 1 ORDER BY 1").fetchall()
        for kind, rows, chars in kinds:
            # Row counts per shard from the mean text size: every shard holds about SHARD_TEXT_BYTES of text,
            # written three times over (messages, completion, reasoning + answer).
            per_row = max(1, 3 * int(chars or 0) // max(rows, 1))
            shard_rows = max(1, SHARD_TEXT_BYTES // per_row)
            n = -(-rows // shard_rows)
            (folder / "data" / kind).mkdir(parents=True)
            files = []
            for i in range(n):
                rel_path = f"data/{kind}/train-{i:05d}-of-{n:05d}.parquet"
                where = f"p.kind = {_lit(kind)} AND m.kind_position >= {i * shard_rows} AND " \
                        f"m.kind_position < {(i + 1) * shard_rows}"
                con.execute(f"COPY ({_export_sql(name, style, where)}) TO {_lit(str(folder / rel_path))} "
                            f"(FORMAT parquet, COMPRESSION zstd)")
                files.append(rel_path)
            size = sum((folder / f).stat().st_size for f in files)
            configs.append({"name": kind, "files": files, "rows": int(rows), "bytes": size})
            schema_ = schema_ or pq.read_schema(folder / files[0])
    every = {"name": "all", "default": True, "files": [f for c in configs for f in c["files"]],
             "rows": sum(c["rows"] for c in configs), "bytes": sum(c["bytes"] for c in configs)}
    configs = [every] + configs
    assert schema_ is not None, "a release has members, so at least one shard"
    features = Features.from_arrow_schema(schema_)
    figure_paths: dict[str, str] = {}
    if figures:
        (folder / "assets").mkdir()
        for title, png in figures.items():
            path = f"assets/{_slug(title)}.png"
            (folder / path).write_bytes(png)
            figure_paths[title] = path
    with catalog.connect() as con:
        manifest_text, recipe = one_row(con.execute("SELECT manifest, recipe FROM releases WHERE name = ?",
                                                    [name]))
    # Byte for byte as frozen, so `sha256sum manifest.json` equals the card's figure.
    (folder / "manifest.json").write_text(manifest_text, encoding="utf-8")
    _write_recipes(folder / "recipes", facts, json.loads(recipe or "null"), catalog)
    (folder / "README.md").write_text(
        render_card(facts, configs, features, list(schema_.names), repo_id=repo_id, license=license,
                    figures=figure_paths), encoding="utf-8")


def _slug(title: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in title.lower()).strip("_")[:60] or "figure"


def _write_recipes(folder: Path, facts: dict[str, Any], release_recipe: dict[str, Any] | None,
                   catalog: Catalog) -> None:
    """What made the release, as YAML beside the data: the generation runs' recipes as recorded in the
    catalog, the judges (name and version), the filters with their parameters, the release selection."""
    import yaml

    folder.mkdir()
    dump = lambda data: yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000)
    run_ids = [r["run_id"] for r in facts["runs"]]
    with catalog.connect() as con:
        for run_id in run_ids:
            kind, model, template, version, sampling, recipe = one_row(con.execute(
                "SELECT kind, model, template, template_version, sampling, recipe FROM runs WHERE run_id = ?",
                [run_id]))
            body = json.loads(recipe or "{}") or {"kind": kind, "model": model, "template": template,
                                                  "template_version": version,
                                                  "sampling": json.loads(sampling or "{}")}
            (folder / f"generate-{run_id}.yaml").write_text(
                _comment(f"run {run_id} ({kind}, model {model}), as recorded in the catalog") + dump(body),
                encoding="utf-8")
    (folder / "judges.yaml").write_text(
        "# the judges whose verdicts decided the release (the version includes a hash of non-default params)\n"
        + dump({"judges": [{"name": j["judge"], "versions": j["versions"]} for j in facts["judges"]]}),
        encoding="utf-8")
    (folder / "filters.yaml").write_text(
        "# the filters and the parameters their decisions were made with (`r1f filter` reads this shape)\n"
        + dump({"filters": [{"name": f["filter"], "params": f["params"]} for f in facts["filters"]]}),
        encoding="utf-8")
    if release_recipe:
        text = _comment(f"release {facts['name']}: r1f release NAME --recipe release.yaml") + dump(release_recipe)
    else:
        text = (_comment(f"release {facts['name']} was made with --where (the selection below); rerun it with "
                         f"r1f release NAME --where SELECTION") + dump({"where": facts["manifest"]["selection"]}))
    (folder / "release.yaml").write_text(text, encoding="utf-8")


def _comment(text: str) -> str:
    """A YAML comment line; catalog strings may hold newlines, which would end the comment early."""
    return "# " + " ".join(text.split()) + "\n"
