"""The catalog's prompts, runs and generations: what was asked, by which run, and what came back.

Reads go through a brief connection or the reader (`store_core`); `iter_samples` streams generations with their
prompt's fields in catalog order, reading each shard's needed row groups once.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import duckdb

from .errors import CatalogError
from .ids import canonical_json
from .ids import run_id as make_run_id
from .split import with_text_parts
from .store_core import SHARD_DIR, CatalogCore, code_version, query_frame, sql_literal

if TYPE_CHECKING:
    import polars as pl

T = TypeVar("T")


class PromptsAndGenerations(CatalogCore):
    """Prompts and runs, and the generations' reads: by run, by id, streamed with their prompts."""

    def prompts(self, where: str | None = None, limit: int | None = None, *, source: str | None = None
                ) -> pl.DataFrame:
        """Prompts matching `where` (an SQL predicate, which may name any of the reader's views) and of `source`."""
        return self._select_prompts(where, limit, source, query_frame)

    def prompt_rows(self, where: str | None = None, limit: int | None = None, *, source: str | None = None
                    ) -> list[dict[str, Any]]:
        """`prompts` as one dict per prompt, without a DataFrame between (what the sampling loop takes)."""
        def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
            cur = con.execute(sql)
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r)) for r in cur.fetchall()]

        return self._select_prompts(where, limit, source, rows)

    def _select_prompts(self, where: str | None, limit: int | None, source: str | None,
                        fetch: Callable[[duckdb.DuckDBPyConnection, str], T]) -> T:
        clauses = [f"source = {sql_literal(source)}"] if source is not None else []
        if where:
            clauses.append(f"({where})")
        sql = ("SELECT prompt_id, source, messages, problem, answer, tests, kind, domain, language, metadata "
               "FROM prompts")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY prompt_id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        # Without a free predicate the query reads the prompts table alone: a plain connection, no views to set up.
        with self.reader() if where else self.connect() as con:
            try:
                return fetch(con, sql)
            except duckdb.Error as exc:
                raise CatalogError(f"prompt selection `{where}` is not a valid SQL predicate over the prompts "
                                   f"view: {str(exc).splitlines()[0]}") from None

    def add_run(self, params: dict[str, Any], *, con: duckdb.DuckDBPyConnection | None = None) -> str:
        """Record a run (once: its id is the hash of `params`); returns its id. `con`: a write connection the caller
        holds, the run then one more row of the caller's transaction."""
        rid = make_run_id(params)
        row = [rid, params.get("kind", "generate"), params.get("model"), params.get("backend"),
               params.get("template"), params.get("template_version"),
               canonical_json(params.get("sampling") or {}), canonical_json(params.get("recipe") or {}),
               params.get("code_version") or code_version(), params.get("source")]
        sql = ("INSERT OR IGNORE INTO runs (run_id, kind, model, backend, template, template_version, sampling, recipe, "
               "code_version, source) VALUES (?,?,?,?,?,?,?,?,?,?)")
        if con is not None:
            con.execute(sql, row)
            return rid
        with self.connect(write=True) as own:
            own.execute(sql, row)
        return rid

    def add_usage(self, row: dict[str, Any]) -> None:
        """One session of a run (`run_usage`): tokens in and out, engine seconds, GPU-seconds, price and cost."""
        cols = ("run_id", "session", "backend", "generations", "tokens_in", "tokens_out", "engine_s", "gpu_s",
                "price_input_per_mtok", "price_output_per_mtok", "cost")
        with self.connect(write=True) as con:
            con.execute(f"INSERT OR REPLACE INTO run_usage ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                        [row.get(c) for c in cols])

    # ---------------------------------------------------------------- generations
    def count_generations(self) -> int:
        with self.connect() as con:
            return int(con.execute("SELECT count(*) FROM generation_meta").fetchall()[0][0])

    def generation_ids(self, run_id: str) -> set[str]:
        with self.connect() as con:
            return {r[0] for r in con.execute(
                "SELECT generation_id FROM generation_meta WHERE run_id = ?", [run_id]).fetchall()}

    def generations(self, run_id: str | None = None, where: str | None = None, *, with_text: bool = True,
                    ids: Sequence[str] | None = None) -> pl.DataFrame:
        """Generations of a run (or matching `where`, or with these `ids`), ordered by prompt and sample index.

        `with_text=False` reads the metadata only, without touching the shards: what a resume needs for a run of
        millions of samples.
        """
        import pyarrow as pa

        clauses = []
        if run_id:
            clauses.append(f"run_id = {sql_literal(run_id)}")
        if where:
            clauses.append(f"({where})")
        if ids is not None:
            clauses.append("generation_id IN (SELECT generation_id FROM wanted_ids)")
        text_cols = "text, reasoning, answer, " if with_text else ""
        sql = (f"SELECT generation_id, prompt_id, run_id, sample_index, seed, {text_cols}finish_reason, "
               f"prompt_tokens, completion_tokens FROM {'generations' if with_text else 'generation_meta'}")
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        # A free `where` may name any view; else the call needs the generations view (texts) or no view at all.
        with (self.reader() if where else self.reader(views=["generations"]) if with_text else self.connect()) as con:
            if ids is not None:
                con.register("wanted_ids", pa.table({"generation_id": list(ids)}))
            return query_frame(con, sql + " ORDER BY prompt_id, sample_index, generation_id")

    def read_text(self, con: duckdb.DuckDBPyConnection, shard: str, row: int) -> dict[str, Any]:
        """One generation's text, read from its shard by row number (DuckDB reads only that row group)."""
        path = self.root / SHARD_DIR / shard
        if not path.exists():
            raise CatalogError(f"catalog {self.root} is damaged: shard {shard} is missing from {path.parent}. "
                               f"Restore the shards folder from a backup.")
        rows = con.execute("SELECT text, r_start, r_end, a_start FROM read_parquet(?, file_row_number = true) "
                           "WHERE file_row_number = ?", [str(path), row]).fetchall()
        if not rows:
            raise CatalogError(f"catalog {self.root} is damaged: shard {shard} has no row {row}.")
        text, r0, r1, a0 = rows[0]
        return {"text": text, "reasoning": text[r0:r1], "answer": text[a0:]}

    def require_generations(self, verb: str) -> None:
        """A clear error for a stage run over a catalog with nothing to work on."""
        if not self.count_generations():
            raise CatalogError(f"catalog {self.root} has no generations yet: nothing to {verb}. Make some with "
                               f"`r1f generate RECIPE` or import them with `r1f ingest FILE --generations --model "
                               f"NAME`.")

    SAMPLE_PROMPT_COLUMNS = ("source", "problem", "answer", "tests", "kind", "domain", "language", "messages")

    def iter_samples(self, *, where: str | Sequence[str | None] | None = None,
                     without: tuple[str, ...] | None = None,
                     batch_rows: int = 2000, on_total: Callable[[int], None] | None = None,
                     marks: Sequence[tuple[str | Sequence[str | None] | None, tuple[str, ...] | None, bool]]
                     | None = None,
                     on_marks: Callable[[list[tuple[int, int]]], None] | None = None,
                     text_parts: bool = True) -> Iterator[pl.DataFrame]:
        """Stream generations with their prompt's fields in catalog order (shard, row), holding no lock between
        batches.

        `where` is a SQL predicate over generation_meta and prompts columns (e.g. `domain = 'math'`), or a
        list of them, all of which must hold.
        `without=("verdict", judge, version)` or `("filter", name, version, params_hash)` skips generations
        that already have that verdict or decision: judging or filtering again costs nothing.
        `marks=[(where_i, without_i, see_done_i), ...]` serves several selections in one pass over the texts:
        a row is streamed when some mark selects it (where_i holds, and it lacks without_i's output unless
        see_done_i and some row where_i selects lacks it), and each batch carries boolean columns `_in_i`
        (mark i selects the row) and `_new_i` (the row lacks without_i's output). `on_marks` gets (selected,
        new) counts per mark.
        Each batch has generation_id, prompt_id, run_id, sample_index, finish_reason, completion_tokens,
        text, reasoning, answer, and the prompt's source, problem, reference (its answer), tests, kind,
        domain, language, messages. With `text_parts=False`, the batches carry the offsets of reasoning and answer
        in text instead (catalogs.split.TEXT_OFFSETS; `with_text_parts` cuts them): for batches sent elsewhere.
        """
        import polars as pl

        def conjunction(w: str | Sequence[str | None] | None) -> str | None:
            if w is not None and not isinstance(w, str):
                return " AND ".join(f"({c})" for c in w if c) or None
            return w

        where = conjunction(where)
        plain = marks is None
        marks = [(None, without, False)] if marks is None else list(marks)
        cols: list[str] = []
        for i, (w, wo, _) in enumerate(marks):
            w = conjunction(w)
            cols.append(f"coalesce(({w}), false) AS _in_{i}" if w else f"true AS _in_{i}")
            cols.append(f"{_lacks_output(wo)} AS _new_{i}")
        sql = (f"SELECT g.shard, g.shard_row, {', '.join(cols)} FROM generation_meta g "
               f"JOIN prompts p USING (prompt_id) {'WHERE ' + where if where else ''}")
        with self.connect() as con:
            try:
                pending = con.sql(sql).pl()
            except duckdb.Error as exc:
                shown = " AND ".join(f"({w})" for w in [where, *(conjunction(m[0]) for m in marks)] if w)
                raise CatalogError(f"selection `{shown}` is not a valid SQL predicate over generations and "
                                   f"prompts: {str(exc).splitlines()[0]}") from None
        # A mark that sees done rows does so to decide new ones: with none new, it needs no row at all.
        has_new = pending.select([(pl.col(f"_in_{i}") & pl.col(f"_new_{i}")).any().alias(str(i))
                                  for i in range(len(marks))]).row(0) if pending.height else [False] * len(marks)
        pending = pending.with_columns(
            [(pl.col(f"_in_{i}") & (pl.lit(see and bool(has_new[i])) | pl.col(f"_new_{i}"))).alias(f"_in_{i}")
             for i, (_, _, see) in enumerate(marks)])
        pending = pending.filter(pl.any_horizontal([f"_in_{i}" for i in range(len(marks))]))
        # a categorical shard name and no ids: a few bytes per selected row
        pending = pending.sort("shard", "shard_row").with_columns(pl.col("shard").cast(pl.Categorical))
        if on_total is not None:
            on_total(pending.height)
        if on_marks is not None:
            on_marks([(int(pending[f"_in_{i}"].sum()), int((pending[f"_in_{i}"] & pending[f"_new_{i}"]).sum()))
                      for i in range(len(marks))])
        mark_cols = [] if plain else [c for i in range(len(marks)) for c in (f"_in_{i}", f"_new_{i}")]
        held: list[Any] = []
        held_rows = 0
        for batch in self._read_selected(pending.select("shard", "shard_row", *mark_cols),
                                         max(batch_rows, 4096), text_parts):
            held.append(batch)
            held_rows += batch.height
            while held_rows >= batch_rows:
                frame = pl.concat(held) if len(held) > 1 else held[0]
                yield frame.slice(0, batch_rows)
                rest = frame.slice(batch_rows)
                held, held_rows = ([rest] if rest.height else []), rest.height
        if held_rows:
            yield pl.concat(held) if len(held) > 1 else held[0]

    def _read_selected(self, pending: Any, chunk_rows: int, text_parts: bool = True) -> Iterator[Any]:
        """Texts and prompt fields of `pending` (shard, shard_row, then extra columns; sorted), in order, a
        chunk of rows at a time: one brief catalog read per chunk, each shard's needed row groups read once."""
        import numpy as np
        import polars as pl
        import pyarrow as pa
        import pyarrow.parquet as pq

        meta_cols = "g.shard, g.shard_row, g.prompt_id, g.run_id, g.sample_index, g.finish_reason, g.completion_tokens"
        prompt_cols = ", ".join(f"p.{c}" if c != "answer" else "p.answer AS reference"
                                for c in self.SAMPLE_PROMPT_COLUMNS)
        for start in range(0, pending.height, chunk_rows):
            chunk = pending.slice(start, chunk_rows)
            wanted_rows = chunk.select(pl.col("shard").cast(pl.String), "shard_row")
            # Each shard's rows of the chunk lie in one span of shard_row (pending is sorted): the spans are read
            # (DuckDB skips the rest by its min/max zones), then narrowed to the wanted rows here.
            spans = wanted_rows.group_by("shard", maintain_order=True).agg(
                pl.col("shard_row").min().alias("lo"), pl.col("shard_row").max().alias("hi"))
            in_spans = " OR ".join(f"(g.shard = {sql_literal(s)} AND g.shard_row BETWEEN {lo} AND {hi})"
                                   for s, lo, hi in spans.iter_rows())
            with self.connect() as con:  # the prompt fields of this chunk's rows, in one brief read
                meta = con.sql(f"SELECT {meta_cols} FROM generation_meta g WHERE {in_spans}").pl().join(
                    wanted_rows, on=["shard", "shard_row"], how="semi", maintain_order="left")
                ids = meta["prompt_id"].unique(maintain_order=True).to_list()
                prompts = _prompts_by_id(con, ids, prompt_cols)
            fields = meta.join(prompts, on="prompt_id", how="inner", maintain_order="left")
            by_shard = fields.partition_by("shard", as_dict=True, include_key=False)
            for (shard,), rows in chunk.group_by("shard", maintain_order=True):
                wanted = rows["shard_row"].to_numpy()
                pf = pq.ParquetFile(self.root / SHARD_DIR / shard)
                bounds = np.cumsum([0] + [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)])
                group_of = np.searchsorted(bounds, wanted, side="right") - 1
                groups = np.unique(group_of)  # only the row groups holding wanted rows are read
                table = pf.read_row_groups(groups.tolist())
                starts = np.concatenate([[0], np.cumsum(np.diff(bounds)[groups])[:-1]])
                local = wanted - bounds[group_of] + starts[np.searchsorted(groups, group_of)]
                texts = pl.from_arrow(table.take(pa.array(local, pa.int64())))
                assert isinstance(texts, pl.DataFrame)
                if text_parts:
                    texts = with_text_parts(texts)
                # texts are in the order of `rows` (shard-row order): joining onto them keeps catalog order
                texts = texts.hstack(rows.drop("shard"))
                yield (texts.join(by_shard[(str(shard),)], on="shard_row", how="inner", maintain_order="left")
                       .drop("shard_row"))


# A chunk's prompts are read by a join, which scans the whole prompts table, while the table has at most this many
# rows per prompt wanted; beyond, by lookups in the table's primary-key index. The scan's CPU and the blocks it
# caches grow with the table, a lookup's do not: for ~4,000 prompts (a chunk of 4,096 generations) lookups cost
# ~0.16 s whatever the table, a scan of prompts of ~300 characters ~0.1 s at 128k prompts and ~0.4 s at 1M.
# Reading 80 batches from a catalog of 1M MATH-500-sized prompts (benchmarks/bench_read_scale.py): 5.7 CPU-s and a 573 MB peak this way,
# 9.6 CPU-s and 808 MB by scans.
SCAN_ROWS_PER_PROMPT = 16


def _prompts_by_id(con: duckdb.DuckDBPyConnection, ids: list[str], prompt_cols: str) -> pl.DataFrame:
    """The prompts with these ids: prompt_id, then `prompt_cols` (over alias p)."""
    import pyarrow as pa

    ((total,),) = con.execute("SELECT count(*) FROM prompts").fetchall()
    if not ids or total <= SCAN_ROWS_PER_PROMPT * len(ids):
        con.register("wanted_prompts", pa.table({"prompt_id": pa.array(ids, pa.string())}))
        return con.sql(f"SELECT p.prompt_id, {prompt_cols} FROM prompts p SEMI JOIN wanted_prompts USING (prompt_id)"
                       ).pl()
    # DuckDB looks constants up in the index when few enough are wanted: a chunk's worth is, once it is told so.
    con.execute(f"SET index_scan_max_count = {max(2048, len(ids))}")
    try:
        return con.sql(f"SELECT p.prompt_id, {prompt_cols} FROM prompts p WHERE p.prompt_id IN "
                       f"({', '.join(sql_literal(x) for x in ids)})").pl()
    finally:
        con.execute("RESET index_scan_max_count")  # a setting of this process' whole DuckDB


def _lacks_output(without: tuple[str, ...] | None) -> str:
    """SQL that is true for a generation (alias g) without the verdict or decision `without` names."""
    if without is None:
        return "true"
    if without[0] == "verdict" and len(without) == 3:
        return (f"g.generation_id NOT IN (SELECT generation_id FROM verdicts WHERE judge = {sql_literal(without[1])} "
                f"AND judge_version = {sql_literal(str(without[2]))})")
    if without[0] == "filter" and len(without) == 4:
        return (f"g.generation_id NOT IN (SELECT generation_id FROM filter_decisions WHERE filter = "
                f"{sql_literal(without[1])} AND filter_version = {sql_literal(str(without[2]))} AND params_hash = "
                f"{sql_literal(without[3])})")
    raise ValueError(f"without={without!r}: use ('verdict', judge, version) or ('filter', name, version, params_hash)")


