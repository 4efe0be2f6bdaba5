"""Read-side queries: `r1f show`, `r1f sql`, `r1f stats`. None of them can change the catalog."""
from __future__ import annotations

import json
from typing import Any

import duckdb

from .errors import CatalogError
from .ids import kind_of
from .store_core import one_row
from .store_prompts import PromptsAndGenerations  # the catalog's part these reads need; a Catalog is one

ALLOWED_STATEMENTS = {"SELECT", "EXPLAIN"}


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _ordered(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    """`ORDER BY keys` (NULLS LAST, ties as scanned), done here: a generation's few verdicts, decisions, releases
    and edits sort in microseconds, while DuckDB's first sort in a process costs `show` a few milliseconds."""
    return sorted(rows, key=lambda row: [(row[k] is None, row[k]) for k in keys])


def _json_field(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def show(catalog: PromptsAndGenerations, any_id: str, full_text: bool = False,
         preview_chars: int = 600) -> dict[str, Any]:
    """The whole lineage of one prompt, generation, run or release."""
    kind = kind_of(any_id)
    # A plain read-only connection: show needs no views, and must stay fast at millions of rows.
    with catalog.connect() as con:
        if kind is None:  # a release is named by the user
            rel = _rows(con, "SELECT * FROM releases WHERE name = ?", [any_id])
            if rel:
                return _show_release(rel[0])
            raise CatalogError(f"`{any_id}` is not an id (ids start with p_, g_, r_) nor a release name. "
                               f"Find ids with `r1f sql \"SELECT generation_id FROM generations LIMIT 5\"`.")
        if kind == "generation":
            return _show_generation(catalog, con, any_id, full_text, preview_chars)
        if kind == "prompt":
            return _show_prompt(con, any_id)
        if kind == "run":
            run = _rows(con, "SELECT * FROM runs WHERE run_id = ?", [any_id])
            if not run:
                raise CatalogError(f"no run {any_id} in catalog {catalog.root}.")
            out = _decode_run(run[0])
            out["generations"] = one_row(con.execute("SELECT count(*) FROM generation_meta WHERE run_id = ?",
                                                     [any_id]))[0]
            return {"type": "run", **out}
    raise CatalogError(f"`{any_id}` names a {kind}; `r1f show` takes prompt (p_), generation (g_), run (r_) "
                       f"ids or a release name.")


def _decode_run(run: dict[str, Any]) -> dict[str, Any]:
    run = dict(run)
    run["sampling"] = _json_field(run.get("sampling"))
    run["recipe"] = _json_field(run.get("recipe"))
    return run


def _prompt_record(con: duckdb.DuckDBPyConnection, pid: str) -> dict[str, Any] | None:
    rows = _rows(con, "SELECT p.*, i.format AS source_format, i.created_at AS ingested_at FROM prompts p "
                      "LEFT JOIN ingests i USING (ingest_id) WHERE p.prompt_id = ?", [pid])
    if not rows:
        return None
    p = rows[0]
    for k in ("messages", "tests", "metadata"):
        p[k] = _json_field(p[k])
    return p


def _show_prompt(con: duckdb.DuckDBPyConnection, pid: str) -> dict[str, Any]:
    p = _prompt_record(con, pid)
    if p is None:
        raise CatalogError(f"no prompt {pid} in this catalog.")
    p["generations"] = _rows(con, "SELECT run_id, count(*) AS generations FROM generation_meta WHERE prompt_id = ? "
                                  "GROUP BY run_id ORDER BY run_id", [pid])
    p["pass_rates"] = _rows(con, "SELECT run_id, samples, accepted, pass_rate, status, rounds FROM prompt_stats "
                                 "WHERE prompt_id = ? ORDER BY run_id", [pid])
    p["releases"] = [r["release_name"] for r in _rows(
        con, "SELECT DISTINCT release_name FROM release_members WHERE prompt_id = ? ORDER BY 1", [pid])]
    return {"type": "prompt", **p}


def _show_generation(catalog: PromptsAndGenerations, con: duckdb.DuckDBPyConnection, gid: str, full_text: bool,
                     preview_chars: int) -> dict[str, Any]:
    g = _rows(con, "SELECT g.*, i.uri AS imported_from FROM generation_meta g LEFT JOIN ingests i USING (ingest_id) "
                   "WHERE g.generation_id = ?", [gid])
    if not g:
        raise CatalogError(f"no generation {gid} in catalog {catalog.root}.")
    gen = g[0]
    texts = catalog.read_text(con, gen.pop("shard"), gen.pop("shard_row"))
    if not full_text:
        texts = {k: _preview(v, preview_chars) for k, v in texts.items()}
    run = _rows(con, "SELECT * FROM runs WHERE run_id = ?", [gen["run_id"]])
    return {
        "type": "generation", **gen, **texts,
        "prompt": _prompt_record(con, gen["prompt_id"]),
        "run": _decode_run(run[0]) if run else None,
        "verdicts": [dict(v, details=_json_field(v["details"])) for v in _ordered(_rows(
            con, "SELECT judge, judge_version, score, passed, reason, details, created_at FROM verdicts "
                 "WHERE generation_id = ?", [gid]), "judge", "judge_version")],
        "filter_decisions": [dict(f, params=_json_field(f["params"])) for f in _ordered(_rows(
            con, "SELECT filter, filter_version, params_hash, passed, reason, value, params, created_at "
                 "FROM filter_decisions WHERE generation_id = ?", [gid]), "filter", "filter_version")],
        "releases": _ordered(_rows(con, "SELECT release_name, position FROM release_members WHERE generation_id = ?",
                                   [gid]), "release_name"),
        # A human edit is a generation of its own: the original it came from, and the edits made of this one.
        "edit_of": _edit_parent(catalog, con, gen.get("parent_id"), full_text, preview_chars),
        "edits": _ordered(_rows(con, "SELECT generation_id, edited_by, edited_at FROM generation_meta "
                                     "WHERE parent_id = ?", [gid]), "edited_at", "generation_id"),
    }


def _edit_parent(catalog: PromptsAndGenerations, con: duckdb.DuckDBPyConnection, parent_id: str | None,
                 full_text: bool, preview_chars: int) -> dict[str, Any] | None:
    if not parent_id:
        return None
    rows = _rows(con, "SELECT shard, shard_row FROM generation_meta WHERE generation_id = ?", [parent_id])
    if not rows:
        return {"generation_id": parent_id}
    texts = catalog.read_text(con, rows[0]["shard"], rows[0]["shard_row"])
    if not full_text:
        texts = {k: _preview(v, preview_chars) for k, v in texts.items()}
    return {"generation_id": parent_id, "reasoning": texts["reasoning"], "answer": texts["answer"]}


def _show_release(rel: dict[str, Any]) -> dict[str, Any]:
    return {"type": "release", **rel, "manifest": _json_field(rel["manifest"]), "recipe": _json_field(rel["recipe"])}


def _preview(text: str, n: int) -> str:
    if len(text) <= n:
        return text
    half = n // 2
    return f"{text[:half]}\n… [{len(text) - n} characters not shown; --full shows all] …\n{text[-half:]}"


def sql(catalog: PromptsAndGenerations, query: str,
        limit: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only SELECT over the documented views."""

    def read_only(con: duckdb.DuckDBPyConnection) -> None:
        try:
            statements = con.extract_statements(query)
        except duckdb.Error as exc:
            raise CatalogError(f"SQL does not parse: {str(exc).splitlines()[0]}") from None
        if len(statements) != 1:
            raise CatalogError(f"give exactly one SQL statement (got {len(statements)}).")
        stype = statements[0].type.name
        if stype not in ALLOWED_STATEMENTS:
            raise CatalogError(f"r1f sql is read-only: a {stype} statement is not allowed. Query the views "
                               f"(prompts, runs, generations, verdicts, filter_decisions, releases, "
                               f"release_members) with SELECT.")

    with catalog.reader(first=read_only) as con:
        try:
            cur = con.execute(query)
        except duckdb.Error as exc:
            raise CatalogError(f"query failed: {str(exc).splitlines()[0]}") from None
        cols = [d[0] for d in cur.description]
        rows = cur.fetchmany(limit) if limit else cur.fetchall()
    return cols, rows


def stats(catalog: PromptsAndGenerations) -> dict[str, Any]:
    """Counts per stage, accept rates, and drop reasons per judge and filter."""
    with catalog.reader() as con:
        one = lambda q: one_row(con.execute(q))[0]
        out: dict[str, Any] = {
            "catalog": str(catalog.root),
            "sources": one("SELECT count(*) FROM sources"),
            "prompts": one("SELECT count(*) FROM prompts"),
            "runs": one("SELECT count(*) FROM runs"),
            "generations": one("SELECT count(*) FROM generation_meta"),
            "judged_generations": one("SELECT count(DISTINCT generation_id) FROM verdicts"),
            "filtered_generations": one("SELECT count(DISTINCT generation_id) FROM filter_decisions"),
            "releases": one("SELECT count(*) FROM releases"),
        }
        out["prompts_by"] = _rows(con, "SELECT source, kind, domain, language, count(*) AS prompts FROM prompts "
                                       "GROUP BY ALL ORDER BY ALL")
        out["generations_by_run"] = _rows(
            con, "SELECT r.run_id, r.kind, r.model, count(g.generation_id) AS generations, "
                 "sum(g.completion_tokens) AS completion_tokens FROM runs r LEFT JOIN generation_meta g "
                 "USING (run_id) GROUP BY ALL ORDER BY r.run_id")
        out["judges"] = _rows(con, "SELECT judge, judge_version, count(*) AS judged, sum(passed::INT) AS passed, "
                                   "round(avg(passed::INT), 4) AS accept_rate FROM verdicts GROUP BY ALL ORDER BY ALL")
        out["judge_reasons"] = _rows(con, "SELECT judge, reason, count(*) AS n FROM verdicts WHERE NOT passed "
                                          "GROUP BY ALL ORDER BY judge, n DESC")
        out["filters"] = _rows(con, "SELECT filter, filter_version, params_hash, count(*) AS decided, "
                                    "sum(passed::INT) AS passed, round(avg(passed::INT), 4) AS pass_rate "
                                    "FROM filter_decisions GROUP BY ALL ORDER BY ALL")
        out["filter_reasons"] = _rows(
            con, "SELECT filter, split_part(reason, ':', 1) AS reason, count(*) AS n FROM filter_decisions "
                 "WHERE NOT passed GROUP BY ALL ORDER BY filter, n DESC")
        out["prompt_status"] = _rows(con, "SELECT run_id, status, count(*) AS prompts, round(avg(pass_rate), 4) "
                                          "AS mean_pass_rate FROM prompt_stats GROUP BY ALL ORDER BY ALL")
        out["release_list"] = _rows(con, "SELECT name, members, manifest_sha256, created_at FROM releases "
                                         "ORDER BY created_at")
    return out
