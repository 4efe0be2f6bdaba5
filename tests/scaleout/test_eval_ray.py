"""`r1f eval --engine ray` on the real two-node Ray cluster with the CPU vLLM engine: the same eval run as a local
`r1f eval` of the recipe, row by row (generations, verdicts, answer classes) and score by score."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from catalogs import Catalog
from tests.helpers import assert_same_samples
from tests.scaleout.conftest import RayCluster
from tests.scaleout.test_generate_ray import r1f, table

DATA = Path(__file__).resolve().parents[1] / "training" / "data"


def write_recipe(path: Path, model: Path) -> Path:
    path.write_text(
        "name: tiny-math500\n"
        f"backend: {{name: vllm, model: {model}, max_model_len: 2048, gpu_memory_utilization: 0.3, "
        "enforce_eager: true, kv_cache_gb: 1}\n"
        "benchmarks:\n"
        f"  - {{name: math500, file: {DATA / 'math500_3.jsonl'}}}\n"
        f"  - {{name: math500-first, file: {DATA / 'math500_3.jsonl'}, limit: 1}}\n"
        "k: 3\n"
        "sampling: {max_tokens: 48}\n")
    return path


def test_eval_on_ray_equals_local_eval(tmp_path: Path, tiny_model_dir: Path, vllm_llm: Any,
                                       ray_cluster: RayCluster) -> None:
    from backends.vllm_backend import VLLMBackend
    from training.evaluate import run_eval

    recipe = write_recipe(tmp_path / "eval.yaml", tiny_model_dir)
    local_cat = Catalog(tmp_path / "local")
    local = run_eval(local_cat, recipe, backend=VLLMBackend(llm=vllm_llm))
    assert local["sampling"]["samples_total"] == (3 + 1) * 3

    ray_dir = tmp_path / "ray"
    args = ["eval", str(recipe), "--engine", "ray", "--address", ray_cluster.address, "--workers", "2",
            "--catalog", str(ray_dir), "--json"]
    res = r1f(*args, env=ray_cluster.env, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    scores = json.loads(res.stdout)  # stdout holds the scores alone: workers' output goes to stderr
    assert scores == local["scores"]
    assert {s["benchmark"] for s in scores} == {"bench/math500", "bench/math500-first"}

    ray_cat = Catalog(ray_dir, create=False)
    run_id = local["run_id"]
    assert table(ray_cat, "SELECT kind FROM runs") == [("eval",)]
    assert_same_samples(ray_cat, local_cat, run_id, min_same_text=0.75)
    for sql in ("SELECT generation_id, judge, judge_version, passed FROM verdicts ORDER BY ALL",
                "SELECT generation_id, prompt_id, answer_key FROM eval_answers ORDER BY ALL",
                "SELECT prompt_id, samples, accepted, status FROM prompt_stats ORDER BY ALL"):
        assert table(ray_cat, sql) == table(local_cat, sql), sql
    assert not table(ray_cat, "SELECT * FROM cat.main.leases")

    # Again on the same engine: every sample is already there; nothing is added and the scores stand.
    before = table(ray_cat, "SELECT count(*) FROM generation_meta")[0][0]
    again = r1f(*args, env=ray_cluster.env, timeout=300)
    assert again.returncode == 0, again.stderr[-4000:]
    assert json.loads(again.stdout) == scores
    assert table(ray_cat, "SELECT count(*) FROM generation_meta")[0][0] == before == (3 + 1) * 3
