"""Speed never changes a score: `r1f eval`'s decisions on fixed inputs equal those recorded from the code before
the eval was made faster (data/eval_recorded.json).

Two inputs: planted answers in many forms (fractions, decimals, sets, text, none), judged and voted through
`compare_runs`; and the tiny model's samples on three MATH-500 problems through the whole `run_eval` on the
shared vLLM engine (each sample seeded, so the same texts every run). For each sample: its verdict, its
reason and its answer class; for each run: pass@1 and cons@k. Samples are named by problem and index, not by
id (a run's id carries the code version).

To record again (only when a change is meant to move a decision): `python tests/training/test_eval_recorded.py`.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"
RECORDED = DATA / "eval_recorded.json"

# (problem, reference, the samples' responses): each response says its index, so equal answers stay separate
# samples when imported.
PLANTED = [
    ("What is 1/2 as a decimal?", "0.5", ["\\boxed{0.5}", "\\boxed{\\frac{1}{2}}", "\\boxed{1/2}", "\\boxed{.5}",
                                          "\\boxed{0.50}", "\\boxed{2}", "no box: 0.5", ""]),
    ("Solve x^2 = 4.", "\\{-2, 2\\}", ["\\boxed{2, -2}", "\\boxed{\\pm 2}", "\\boxed{-2,2}", "\\boxed{2}",
                                        "\\boxed{x = 2}", "\\boxed{\\{2,-2\\}}"]),
    ("What is 3 + 4?", "7", ["\\boxed{7}", "\\boxed{8}", "\\boxed{8}", "\\boxed{seven}", "\\boxed{7.0}",
                              "\\boxed{ 8 }"]),
    ("Convert (0,3) to polar.", "\\left( 3, \\frac{\\pi}{2} \\right)",
     ["\\boxed{(3, \\pi/2)}", "\\boxed{\\left(3,\\frac{\\pi}{2}\\right)}", "\\boxed{(3, 90^\\circ)}",
      "\\boxed{(3, \\pi)}", "\\boxed{3}"]),
    ("Name the interval of x > 1.", "(1, \\infty)", ["\\boxed{(1,\\infty)}", "\\boxed{x > 1}", "\\boxed{[1,\\infty)}",
                                                     "\\boxed{(1, \\infty)}"]),
]


def _per_sample(catalog: Any, run_ids: list[str]) -> dict[str, list]:
    with catalog.reader() as con:
        rows = con.execute(
            "SELECT p.problem, g.sample_index, v.passed, v.reason, a.answer_key FROM generation_meta g "
            "JOIN prompts p USING (prompt_id) "
            "LEFT JOIN verdicts v ON v.generation_id = g.generation_id AND v.judge = 'math_accuracy' "
            "LEFT JOIN eval_answers a ON a.generation_id = g.generation_id "
            "WHERE g.run_id IN (SELECT unnest($r)) ORDER BY 1, 2", {"r": run_ids}).fetchall()
    return {f"{problem[:40]} #{idx}": [passed, reason, key] for problem, idx, passed, reason, key in rows}


def planted_decisions(root: Path) -> dict[str, Any]:
    from tests.training.conftest import judged_planted_run

    catalog, row = judged_planted_run(root, [{"problem": p, "answer": ref, "response": f"Try {i}: {a}"}
                                             for p, ref, answers in PLANTED for i, a in enumerate(answers)])
    # Imported samples are numbered by import order, one run for all: name them by their response instead.
    with catalog.reader() as con:
        rows = con.execute(
            "SELECT p.problem, g.text, v.passed, v.reason, a.answer_key FROM generations g JOIN prompts p "
            "USING (prompt_id) JOIN verdicts v USING (generation_id) LEFT JOIN eval_answers a "
            "USING (generation_id) ORDER BY 1, 2").fetchall()
    samples = {f"{problem[:40]} | {text}": [passed, reason, key] for problem, text, passed, reason, key in rows}
    return {"pass_at_1": row["pass_at_1"], "cons_at_k": row["cons_at_k"], "k": row["k"], "samples": samples}


def engine_decisions(root: Path, model: Path, backend: Any) -> dict[str, Any]:
    from catalogs.store import Catalog
    from training.evaluate import run_eval

    recipe = root / "eval.yaml"
    recipe.write_text(f"backend: {{name: vllm, model: {model}}}\n"
                      f"benchmarks: [{{name: math500, file: {DATA / 'math500_3.jsonl'}}}]\n"
                      f"k: 4\nsampling: {{max_tokens: 48}}\n")
    catalog = Catalog(root / "engine-catalog")
    out = run_eval(catalog, recipe, backend=backend)
    [score] = out["scores"]
    return {"pass_at_1": score["pass_at_1"], "cons_at_k": score["cons_at_k"], "k": score["k"],
            "samples": _per_sample(catalog, [out["run_id"]])}


def test_planted_decisions_equal_the_recorded_ones(tmp_path):
    assert planted_decisions(tmp_path) == json.loads(RECORDED.read_text())["planted"]


def test_engine_decisions_equal_the_recorded_ones(tmp_path, tiny_model_dir, vllm_llm):
    from backends.vllm_backend import VLLMBackend

    got = engine_decisions(tmp_path, tiny_model_dir, VLLMBackend(llm=vllm_llm))
    assert got == json.loads(RECORDED.read_text())["engine"]


def record() -> None:  # pragma: no cover - run by hand, see the docstring
    import os

    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    import vllm

    from backends.vllm_backend import VLLMBackend, cpu_safe_engine_kwargs
    from factory.tiny_model import build_tiny_model
    from tests.helpers import ENGINE_KWARGS

    root = Path(tempfile.mkdtemp(prefix="eval-recorded-"))
    model = build_tiny_model(root / "tiny-model")
    llm = vllm.LLM(model=str(model), **cpu_safe_engine_kwargs(ENGINE_KWARGS))
    try:
        out = {"planted": planted_decisions(root), "engine": engine_decisions(root, model, VLLMBackend(llm=llm))}
    finally:
        llm.llm_engine.engine_core.shutdown()
    RECORDED.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORDED}", file=sys.stderr)


if __name__ == "__main__":
    record()
