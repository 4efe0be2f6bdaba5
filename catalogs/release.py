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

from . import schema
from .ids import canonical_json, content_hash
from .store import Catalog, CatalogError, code_version

DEFAULT_SELECTION = "judges_failed = 0 AND filters_failed = 0"

# One row per generation with what decides its fate. For each judge (filter), the newest verdict
# (decision) counts: re-judging with a new version or new thresholds supersedes the old one.
CANDIDATES_SQL = """
SELECT g.generation_id, g.prompt_id, g.run_id, g.sample_index, g.finish_reason, g.completion_tokens,
       g.text_chars, g.reasoning_chars, g.answer_chars, p.source, p.kind, p.domain, p.language, r.model,
       coalesce(v.judged, 0) AS judged, coalesce(v.judges_failed, 0) AS judges_failed,
       coalesce(f.filtered, 0) AS filtered, coalesce(f.filters_failed, 0) AS filters_failed,
       v.failed_judges, f.failed_filters
FROM generation_meta g
JOIN prompts p USING (prompt_id)
LEFT JOIN runs r USING (run_id)
LEFT JOIN (
  SELECT generation_id, count(*) AS judged, sum((NOT passed)::INT) AS judges_failed,
         list(judge || ':' || reason ORDER BY judge) FILTER (WHERE NOT passed) AS failed_judges
  FROM (SELECT * FROM verdicts
        QUALIFY row_number() OVER (PARTITION BY generation_id, judge ORDER BY created_at DESC, judge_version DESC) = 1)
  GROUP BY generation_id) v USING (generation_id)
LEFT JOIN (
  SELECT generation_id, count(*) AS filtered, sum((NOT passed)::INT) AS filters_failed,
         list(filter || ':' || split_part(reason, ':', 1) ORDER BY filter) FILTER (WHERE NOT passed) AS failed_filters
  FROM (SELECT * FROM filter_decisions
        QUALIFY row_number() OVER (PARTITION BY generation_id, filter ORDER BY created_at DESC, filter_version DESC) = 1)
  GROUP BY generation_id) f USING (generation_id)
"""


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


def _selection_sql(recipe: ReleaseRecipe) -> str:
    order = {"shortest": "text_chars ASC, generation_id", "longest": "text_chars DESC, generation_id",
             "random": f"md5('{recipe.seed}:' || generation_id)"}[recipe.prefer]
    judged = "(kind = 'non_reasoning' OR judged > 0)" if recipe.require_judged else "true"
    extra = f" AND ({recipe.where})" if recipe.where else ""
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
            "prompts": con.execute("SELECT count(DISTINCT prompt_id) FROM selected").fetchone()[0],
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


def _mix(con: duckdb.DuckDBPyConnection, recipe: ReleaseRecipe) -> dict[str, Any]:
    """Draw each kind's share from `eligible` into `selected`, deterministically from the seed."""
    available = dict(con.execute("SELECT kind, count(*) FROM eligible GROUP BY kind").fetchall())
    n_r, n_nr = available.get("reasoning", 0), available.get("non_reasoning", 0)
    if recipe.reasoning_share is not None:
        share = recipe.reasoning_share
        total = int(min(n_r / share, n_nr / (1 - share))) if n_r and n_nr else 0
        want_r, want_nr = round(total * share), total - round(total * share)
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


EXPORT_FORMATS = ("parquet", "jsonl", "hf")
EXPORT_STYLES = ("messages", "prompt_completion")
MESSAGES_TYPE = '[{"role":"VARCHAR","content":"VARCHAR"}]'


def export_release(catalog: Catalog, name: str, out: str | Path, fmt: str = "parquet",
                   style: str = "messages", overwrite: bool = False) -> Path:
    """Write a release as chat `messages` or `prompt`/`completion` rows, the two formats trl's trainers read."""
    if fmt not in EXPORT_FORMATS:
        raise CatalogError(f"--format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}.")
    if style not in EXPORT_STYLES:
        raise CatalogError(f"--style {style!r}: use one of {', '.join(EXPORT_STYLES)}.")
    manifest = get_manifest(catalog, name)
    out = Path(out)
    if out.exists() and not overwrite:
        raise CatalogError(f"{out} already exists; choose another --out or pass --overwrite.")
    completion = "[{'role': 'assistant', 'content': t.text}]"
    columns = (f"list_concat(from_json(p.messages, '{MESSAGES_TYPE}'), {completion}) AS messages"
               if style == "messages" else
               f"from_json(p.messages, '{MESSAGES_TYPE}') AS prompt, {completion} AS completion")
    query = (f"SELECT {columns}, m.generation_id, m.prompt_id, p.source, p.kind, p.domain, p.language, "
             f"p.answer AS reference_answer, t.reasoning, t.answer "
             f"FROM release_members m JOIN prompts p USING (prompt_id) JOIN generation_texts t USING (generation_id) "
             f"WHERE m.release_name = '{name.replace(chr(39), '')}' ORDER BY m.position")
    tmp = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        with catalog.reader() as con:
            if fmt == "hf":
                (tmp / "data").mkdir(parents=True)
                target = tmp / "data" / "train-00000-of-00001.parquet"
            else:
                target = tmp
            options = "FORMAT parquet, COMPRESSION zstd" if fmt in ("parquet", "hf") else "FORMAT json"
            con.execute(f"COPY ({query}) TO '{str(target).replace(chr(39), chr(39) * 2)}' ({options})")
        if fmt == "hf":
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
            (tmp / "README.md").write_text(dataset_card(manifest, style))
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    return out


def dataset_card(manifest: dict[str, Any], style: str) -> str:
    langs = sorted(manifest.get("by_language", {}))
    lines = ["---", "configs:", "- config_name: default", "  data_files:", "  - split: train",
             "    path: data/train-*.parquet", "language:"] + [f"- {lang}" for lang in langs] + [
        "tags:", "- reasoning", "- r1-factory", "---", "",
        f"# {manifest['name']}", "",
        f"Built with r1-factory {code_version()}: {manifest['members']} samples from {manifest['prompts']} prompts, "
        f"in trl's `{style}` format.", "",
        f"Selection: `{manifest['selection']}`", "",
        "| source | samples |", "|---|---|"] + [f"| {k} | {v} |" for k, v in manifest["by_source"].items()] + [
        "", "`manifest.json` lists the counts per source, domain and language, and what was excluded and why.", ""]
    return "\n".join(lines)
