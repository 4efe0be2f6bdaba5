"""`r1f eval RECIPE`: the paper's evaluation, stored in the catalog and scored in SQL.

Each benchmark file is ingested as prompts of source `bench/<name>` (ingest is idempotent), then the
factory samples k answers per problem through its own engine, templates and seeded sampling loop, judged
by the judges as it goes, as a run of kind `eval`. Ids are content hashes, so evaluating the same model
with the same recipe again finds every sample already there and adds nothing.

pass@1 is the mean over the k samples of the first judge's verdict; cons@k is the majority vote. Votes
need answers compared as math, not as strings ("1/2" and "0.5" are one vote), so each generation's
answer class (`eval_answers`) is computed once with Math-Verify and stored; both scores are then SQL over
the catalog (`SCORES_SQL`), which anyone can rerun with `r1f sql`.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from catalogs.errors import RecipeError
from training.recipe import EvalRecipe, load_recipe

if TYPE_CHECKING:
    import duckdb

    from catalogs.store import Catalog

log = logging.getLogger("training")

ANSWER_METHOD = "math_verify:1"


class EvalStore(Protocol):
    """What scoring an eval needs of the catalog: the benchmarks' prompts, reads, and the answer classes. The
    eval run itself (`run_eval`) takes the whole `Catalog`: it ingests the benchmarks and samples."""

    def prompt_rows(self, where: str | None = None, limit: int | None = None, *, source: str | None = None
                    ) -> list[dict[str, Any]]: ...

    def eval_answers_due(self, run_id: str) -> tuple[list[tuple[str, str, str, str]], dict[str, list[str]]]: ...

    def connect(self, write: bool = False) -> AbstractContextManager[duckdb.DuckDBPyConnection]: ...

    def add_eval_answers(self, rows: Sequence[dict[str, Any]]) -> int: ...

# One row per (run, benchmark). The first judge decides; for each generation its newest verdict counts.
SCORES_SQL = """
WITH v AS (
  SELECT generation_id, passed FROM verdicts WHERE judge = $judge
  QUALIFY row_number() OVER (PARTITION BY generation_id ORDER BY created_at DESC, judge_version DESC) = 1),
g AS (
  SELECT g.run_id, g.prompt_id, g.generation_id, g.sample_index, p.source,
         coalesce(v.passed, false) AS passed, a.answer_key
  FROM generation_meta g JOIN prompts p USING (prompt_id)
  LEFT JOIN v USING (generation_id) LEFT JOIN eval_answers a USING (generation_id)
  WHERE g.run_id IN (SELECT run_id FROM wanted_runs)),
votes AS (
  SELECT run_id, prompt_id, answer_key, count(*) AS n, min(sample_index) AS first, bool_or(passed) AS correct
  FROM g WHERE answer_key IS NOT NULL GROUP BY ALL),
cons AS (
  SELECT run_id, prompt_id, correct FROM votes
  QUALIFY row_number() OVER (PARTITION BY run_id, prompt_id ORDER BY n DESC, first) = 1),
per_prompt AS (
  SELECT run_id, source, prompt_id, avg(passed::INT) AS pass1, count(*) AS k FROM g GROUP BY ALL)
SELECT pp.run_id, r.model, pp.source AS benchmark, count(*) AS problems, min(pp.k) AS k,
       round(100 * avg(pp.pass1), 2) AS pass_at_1, round(100 * avg(coalesce(c.correct, false)::INT), 2) AS cons_at_k
FROM per_prompt pp LEFT JOIN cons c USING (run_id, prompt_id) LEFT JOIN runs r USING (run_id)
GROUP BY ALL ORDER BY benchmark, model, run_id
"""


def bench_source(name: str) -> str:
    return f"bench/{name}"


def _factory_recipe(recipe: EvalRecipe) -> Any:
    """The factory's own recipe for k samples per prompt, no rejection: every prompt's budget is exactly k."""
    from factory.recipe import Recipe

    k = recipe.k
    r = Recipe(backend=recipe.backend, template=recipe.template, sampling=recipe.sampling,
               samples_per_prompt=k, budget={"max_samples": k, "round_size": k, "retry_samples": 0},
               judges=[{"name": j} for j in recipe.judges])
    r.source_path = recipe.source_path
    return r


def _check(recipe: EvalRecipe) -> None:
    from factory.recipe import looks_like_local_path

    for i, b in enumerate(recipe.benchmarks):
        path = recipe.resolve(b.file)
        if path is None or not path.exists():
            raise RecipeError(f"{recipe.where}: benchmarks[{i}].file: {b.file!r} does not exist; give a JSONL, "
                              f"JSON or Parquet file with problem and answer")
    names = [b.name for b in recipe.benchmarks]
    if len(set(names)) != len(names):
        raise RecipeError(f"{recipe.where}: benchmarks: names must be unique; got {names}")
    model = recipe.backend.model
    if recipe.backend.in_process and not Path(model).expanduser().exists() and looks_like_local_path(model):
        raise RecipeError(f"{recipe.where}: backend.model: model path {model!r} does not exist; give a saved "
                          f"model folder or a Hub id")


def ingest_benchmarks(catalog: Catalog, recipe: EvalRecipe, run: dict[str, Any] | None = None) -> str | None:
    """Ingest the recipe's benchmarks. `run`: the eval run's params, recorded in the last benchmark's transaction
    (one commit for both); returns its id."""
    from catalogs.ingest import IngestOptions, ingest

    rid: str | None = None

    def add_run(con: duckdb.DuckDBPyConnection) -> None:
        nonlocal rid
        assert run is not None
        rid = catalog.add_run(run, con=con)

    for i, b in enumerate(recipe.benchmarks):
        path = recipe.resolve(b.file)
        assert path is not None  # resolve gives None for None only, and `file` is required
        last = i == len(recipe.benchmarks) - 1
        ingest(catalog, path, IngestOptions(source=bench_source(b.name), rename=dict(b.rename),
                                            kind="reasoning", choices=tuple(b.choices),
                                            shuffle_choices=b.shuffle_choices),
               also=add_run if run is not None and last else None)
    if run is not None and rid is None:  # no benchmark (a recipe needs one; kept right all the same)
        rid = catalog.add_run(run)
    return rid


def _prompts(catalog: EvalStore, recipe: EvalRecipe) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for b in recipe.benchmarks:
        out.extend(catalog.prompt_rows(source=bench_source(b.name), limit=b.limit))
    return out


def run_eval(catalog: Catalog, recipe_path: str | Path, *, backend: Any = None, progress: bool | None = False,
             sampler: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """Sample, judge and store; then score. `backend` overrides the recipe's (it is not closed here). `sampler`
    samples on another engine instead of this process (`r1f eval --engine ray`): it gets the factory recipe, the
    catalog, the eval run's id and the prompts, as `scaleout.generate.sample_on_ray` takes them."""
    from catalogs.progress import RunProgress
    from factory.generate import resolve_judges, run_params, sampling_job
    from factory.sampling import run_sampling
    from factory.templates import template_from_recipe

    recipe: EvalRecipe = load_recipe(recipe_path, EvalRecipe)
    _check(recipe)
    frecipe = _factory_recipe(recipe)
    template = template_from_recipe(frecipe)
    bound = resolve_judges(frecipe, None)
    params = run_params(frecipe, template)
    params["kind"] = "eval"  # an eval run is never mistaken for (or merged with) a data-generation run
    # Quick calls, one attach (`Catalog.held`): the benchmarks, their prompts and the run; the sampling's leases,
    # commits and verdicts; the answer classes and scores. The file is given back around the model's load, calls and
    # close, and around another engine's sampling.
    with catalog.held():
        run_id = ingest_benchmarks(catalog, recipe, params)
        assert run_id is not None
        prompts = _prompts(catalog, recipe)
        resume_hint = f"rerun the same `r1f eval {recipe_path}` command to resume"
        label = recipe.name or "eval"
        if sampler is not None:
            with catalog.released():
                summary = sampler(frecipe, catalog, run_id=run_id, prompts=prompts, resume_hint=resume_hint,
                                  label=label, progress=progress)
        else:
            job = sampling_job(frecipe, template, bound, run_id, prompts, resume_hint)
            own = backend is None
            if own:
                from backends import get_backend
                from backends.config import backend_kwargs

                with catalog.released():  # a backend may load its model here: seconds to minutes
                    backend = get_backend(recipe.backend.name, **backend_kwargs(recipe.backend))
            try:
                with RunProgress(len(prompts), label=label, enabled=progress) as bar:
                    summary = run_sampling(job, backend, catalog, bar)
            finally:
                if own:
                    with catalog.released():
                        backend.close()
        added = store_answer_classes(catalog, run_id, recipe.judges[0])
        scores = score_runs(catalog, [run_id], recipe.judges[0])
    return {"run_id": run_id, "sampling": summary, "answers_added": added, "scores": scores}


# ---------------------------------------------------------------------------------------------------
# Answer classes: which samples of a prompt vote for the same answer.

def _same(a: tuple[str, list[Any]], b: tuple[str, list[Any]]) -> bool:
    from math_verify import verify

    from judges.math_accuracy import parsed

    if a[0].strip() == b[0].strip():
        return True
    if not parsed(a[1]) or not parsed(b[1]):
        return False  # one side did not parse: only the same text is the same answer
    return bool(verify(a[1], b[1], timeout_seconds=None) or verify(b[1], a[1], timeout_seconds=None))


def answer_classes(answers: list[str | None], known: Sequence[str] = ()) -> list[str | None]:
    """For each answer (None: no answer), the first earlier answer it equals under Math-Verify (or itself).

    `known` are the classes already stored for the prompt, so samples added later join the same votes."""
    from judges.math_accuracy import parse_boxed

    reps: list[tuple[str, list[Any]]] = [(k, parse_boxed(k)) for k in known]
    out: list[str | None] = []
    for ans in answers:
        if ans is None or not ans.strip():
            out.append(None)
            continue
        cand = (ans, parse_boxed(ans))
        match = next((r for r in reps if _same(r, cand)), None)
        if match is None:
            reps.append(cand)
            match = cand
        out.append(match[0])
    return out


def store_answer_classes(catalog: EvalStore, run_id: str, judge: str) -> int:
    """Compute and store the answer class of each of the run's generations that has none yet."""
    from judges.math_accuracy import last_boxed

    due, known = catalog.eval_answers_due(run_id)
    if not due:
        return 0
    by_prompt: dict[str, list[tuple[str, str | None]]] = {}
    for gid, pid, text, answer in due:
        # The same extraction the math judge uses: the last \boxed{} of the answer part, else of the whole text.
        boxed = last_boxed(answer) if answer.strip() else last_boxed(text)
        by_prompt.setdefault(pid, []).append((gid, boxed))
    out: list[dict[str, Any]] = []
    for pid, items in by_prompt.items():
        keys = answer_classes([b for _, b in items], known.get(pid, []))
        out.extend({"generation_id": gid, "run_id": run_id, "prompt_id": pid, "answer_key": key,
                    "method": ANSWER_METHOD} for (gid, _), key in zip(items, keys))
    return catalog.add_eval_answers(out)


def score_runs(catalog: EvalStore, run_ids: list[str], judge: str = "math_accuracy") -> list[dict[str, Any]]:
    import pyarrow as pa

    # SCORES_SQL reads tables only: a plain connection, without the reader's views to set up.
    with catalog.connect() as con:
        con.register("wanted_runs", pa.table({"run_id": list(run_ids)}))
        cur = con.execute(SCORES_SQL, {"judge": judge})
        cols = [d[0] for d in cur.description]
        return [dict(zip(cols, r)) for r in cur.fetchall()]


def compare_runs(catalog: EvalStore, names: list[str], judge: str = "math_accuracy") -> list[dict[str, Any]]:
    """Scores of runs given by id or by model name, side by side."""
    with catalog.connect() as con:
        ids = [r[0] for r in con.execute(
            "SELECT run_id FROM runs WHERE run_id IN (SELECT unnest($n)) OR model IN (SELECT unnest($n)) "
            "ORDER BY run_id", {"n": names}).fetchall()]
    if not ids:
        raise RecipeError(f"--compare: no run or model named {', '.join(names)}; list eval runs with "
                          f"`r1f sql \"SELECT run_id, model FROM runs WHERE kind = 'eval'\"`")
    for rid in ids:
        store_answer_classes(catalog, rid, judge)
    return score_runs(catalog, ids, judge)


def print_scores(rows: list[dict[str, Any]]) -> None:
    from catalogs.clikit import console, table

    for bench in dict.fromkeys(r["benchmark"] for r in rows):
        console.print(table(f"{bench}", [{"model": r["model"], "run": r["run_id"], "problems": r["problems"],
                                          "k": r["k"], "pass@1 %": r["pass_at_1"], f"cons@{r['k']} %": r["cons_at_k"]}
                                         for r in rows if r["benchmark"] == bench]))
    if not rows:
        console.print("no scored generations")

