"""Rewrite: new generations made from stored ones by a declared rewriter, each naming the generation it came from.

The paper's cold start gathers "DeepSeek-R1-Zero outputs in a readable format" by post-processing. A rewriter is
that post-processing as code: a pure function of one generation's texts that may only reformat them (tags, the
summary line); the reasoning is the model's own, verbatim. Rewriters are declared once, in REWRITERS, with a name
and a version, as judges and filters are.

How a rewrite is stored (the review edit's lineage, review/decisions.py):
- a new generation of a run of kind `rewrite` (model: the parent's model, backend `rewrite`, template: the
  rewriter and its version, source `rewrite:NAME`; one run per rewriter and parent run, named by the parent run,
  which names a local model by its content, so the same rewrites in another folder get the same ids), with
  `generation_meta.parent_id` = the parent and
  `edited_by` = `rewrite:NAME@VERSION`, so `r1f show` prints where it came from and the parent lists it;
- its id is a content hash of the parent and the new text: running the stage again adds nothing;
- the parent is left as it was. A rewrite is a new sample: the judges and filters judge it like any other.
A generation the rewriter cannot read (no reasoning, no boxed answer), or one it made itself, gets no rewrite; the
stage counts why.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from catalogs.boxed import last_boxed
from catalogs.errors import RecipeError
from catalogs.ids import canonical_json, content_hash, generation_id, run_id
from catalogs.recipes import Strict, load_model

if TYPE_CHECKING:
    from catalogs.store import Catalog

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

# (text, reasoning, answer) of the parent -> (reasoning, answer) of the rewrite, or why there is none.
RewriteFn = Callable[[str, str, str], "tuple[str, str] | str"]


@dataclass(frozen=True)
class Rewriter:
    name: str
    version: str
    description: str
    rewrite: RewriteFn


def readable(text: str, reasoning: str, answer: str) -> tuple[str, str] | str:
    """The readable pattern `<think>REASONING</think> The answer is \\boxed{N}.`: the parent's reasoning as the
    splitter cut it, verbatim, and a summary line naming the last `\\boxed{}` of its answer part (an R1-Zero
    `<answer>\\boxed{N}</answer>` becomes `The answer is \\boxed{N}.`)."""
    if not reasoning.strip():
        return "no_reasoning"
    box = last_boxed(answer)
    if box is None or not box.strip():
        return "no_boxed_answer"
    return reasoning, f"The answer is \\boxed{{{box.strip()}}}."


REWRITERS: dict[str, Rewriter] = {r.name: r for r in (
    Rewriter("readable", "1", "reasoning verbatim in <think></think>, then `The answer is \\boxed{N}.`", readable),
)}


def get_rewriter(name: str) -> Rewriter:
    if name not in REWRITERS:
        raise KeyError(f"unknown rewriter {name!r}; known: {', '.join(sorted(REWRITERS))}")
    return REWRITERS[name]


def compose(reasoning: str, answer: str) -> str:
    """A rewrite's full text: what the model would have written in the readable pattern."""
    return f"{THINK_OPEN}{reasoning}{THINK_CLOSE} {answer}"


class RewriteRecipe(Strict):
    """`r1f run`'s `rewrite` stage: which generations (parents) to rewrite, and with which rewriter."""

    name: str | None = None
    description: str | None = None
    rewriter: str
    # A SQL predicate over generation_meta and prompts columns: the parents. It must select at least one.
    where: str
    batch_rows: int = Field(default=2000, ge=1)
    source_path: Path | None = Field(default=None, exclude=True)

    @field_validator("rewriter")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in REWRITERS:
            raise ValueError(f"unknown rewriter {value!r}; use one of: {', '.join(sorted(REWRITERS))}")
        return value


def load_rewrite_recipe(path: str | Path) -> RewriteRecipe:
    recipe = load_model(path, RewriteRecipe)
    recipe.source_path = Path(path)
    return recipe


def rewrite_params(rewriter: Rewriter, model: str | None) -> dict[str, Any]:
    """The run a rewrite belongs to, as stored: the rewriter (and version) and the parent's model."""
    return {"kind": "rewrite", "model": model, "backend": "rewrite", "template": rewriter.name,
            "template_version": rewriter.version, "sampling": {}, "source": f"rewrite:{rewriter.name}"}


def rewrite_run_id(params: dict[str, Any], parent_run: str) -> str:
    """The rewrite run's id: named by its parent run, not by the model's path (the stored `model`). A parent run
    names a local model by its content, so the same parents rewritten in another folder (a fresh demo) get the same
    run, the same ids, and the same picks downstream."""
    return run_id({**params, "model": f"run:{parent_run}"})


def rewrite_catalog(catalog: Catalog, recipe: RewriteRecipe) -> dict[str, Any]:
    """Rewrite every generation `recipe.where` selects; write the rewrites, their runs and their parent links in
    one transaction (all or nothing). Returns the counts: parents, rewritten, added (new to the catalog), and
    skipped per reason."""
    import shutil

    from catalogs.errors import CatalogError
    from catalogs.store import code_version

    rewriter = get_rewriter(recipe.rewriter)
    where_at = f"{recipe.source_path or '<recipe>'}: where"
    by = f"rewrite:{rewriter.name}@{rewriter.version}"  # each rewrite's `edited_by`
    with catalog.reader() as con:
        models = dict(con.execute("SELECT run_id, model FROM runs").fetchall())
        # This rewriter's own outputs are never its parents: a selection by model also holds the rewrites (their
        # run has the parent's model), and rewriting them again would add copies under new ids.
        own = {r[0] for r in con.execute("SELECT run_id FROM runs WHERE kind = 'rewrite' AND template = ?",
                                         [rewriter.name]).fetchall()}
        # Parents this rewriter (this version) rewrote already, whatever their rewrite's id: a catalog written when
        # rewrite runs were named by the model's path gets no second copy.
        done = {r[0] for r in con.execute("SELECT parent_id FROM generation_meta WHERE edited_by = ?",
                                          [by]).fetchall()}
    parents, rewritten, skipped = 0, 0, Counter[str]()
    runs: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    links: list[tuple[str, str]] = []
    try:
        batches = list(catalog.iter_samples(where=recipe.where, batch_rows=recipe.batch_rows))
    except CatalogError as exc:
        raise RecipeError(f"{where_at}: {exc}; fix the predicate") from None
    for frame in batches:
        for s in frame.iter_rows(named=True):
            if s["run_id"] in own:
                skipped["own_rewrite"] += 1
                continue
            parents += 1
            got = rewriter.rewrite(s["text"] or "", s["reasoning"] or "", s["answer"] or "")
            if isinstance(got, str):
                skipped[got] += 1
                continue
            reasoning, answer = got
            rewritten += 1
            if s["generation_id"] in done:
                continue
            params = rewrite_params(rewriter, models.get(s["run_id"]))
            rid = rewrite_run_id(params, s["run_id"])
            runs[rid] = params
            text = compose(reasoning, answer)
            gid = generation_id(s["prompt_id"], rid, "rewrite:" + content_hash(s["generation_id"], text))
            rows.append({"generation_id": gid, "prompt_id": s["prompt_id"], "run_id": rid, "sample_index": None,
                         "seed": None, "text": text, "reasoning": reasoning, "answer": answer,
                         "finish_reason": "stop"})
            links.append((s["generation_id"], gid))
    if not parents:
        raise RecipeError(f"{where_at}: `{recipe.where}` selects no generation in catalog {catalog.root}: there "
                          f"is no parent to rewrite. Generate the parents first (an earlier stage), or fix the "
                          f"predicate.")
    added = 0
    if rows:
        staged = catalog.stage_generations(rows)
        try:
            with catalog.transaction() as con:
                for rid, p in runs.items():
                    con.execute("INSERT OR IGNORE INTO runs (run_id, kind, model, backend, template, "
                                "template_version, sampling, recipe, code_version, source) "
                                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                                [rid, p["kind"], p["model"], p["backend"], p["template"], p["template_version"],
                                 canonical_json({}), canonical_json({}), code_version(), p["source"]])
                added = catalog.commit_staged(con, [staged])
                at = datetime.now(timezone.utc).replace(tzinfo=None)
                con.executemany("UPDATE generation_meta SET parent_id = ?, edited_by = ?, "
                                "edited_at = ? WHERE generation_id = ? AND parent_id IS NULL",
                                [[parent, by, at, gid] for parent, gid in links])
        finally:
            shutil.rmtree(staged.shard_path.parent, ignore_errors=True)
    return {"rewriter": f"{rewriter.name}@{rewriter.version}", "parents": parents, "rewritten": rewritten,
            "added": added, "skipped": dict(sorted(skipped.items())), "runs": sorted(runs)}
