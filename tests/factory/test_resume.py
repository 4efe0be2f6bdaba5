"""Resume after kill -9: a run killed mid-way and started again ends with exactly the samples an
uninterrupted run makes (same ids, same texts), none lost, none duplicated, none generated twice."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest
from catalogs.query import sql
from factory.generate import generate_from_recipe
from tests.helpers import HOLD_AT_COMMIT, SINGLE_PROCESS_ENGINE, assert_same_samples

REPO = Path(__file__).resolve().parents[2]

# The simulated judge, shared verbatim by the killed subprocess and this process.
JUDGE_SRC = '''
import hashlib
def simulated_judge(sample):
    if sample.problem.startswith("impossible"):
        return False
    return int(hashlib.sha256(sample.generation_id.encode()).hexdigest(), 16) % 3 == 0
simulated_judge.version = "1"
'''


def load_judges(tmp_path: Path) -> dict[str, Any]:
    """Write the judge to a module file and import it (the subprocess imports the same file)."""
    (tmp_path / "sim_judge.py").write_text(JUDGE_SRC)
    spec = importlib.util.spec_from_file_location("sim_judge", tmp_path / "sim_judge.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"simulated": module.simulated_judge}


SCRIPT = HOLD_AT_COMMIT + '''
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from sim_judge import simulated_judge


if __name__ == "__main__":  # vLLM spawns processes
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
    logging.getLogger().addHandler(HoldAtCommit(6))  # after the line is printed by basicConfig's handler
    from catalogs import Catalog
    from factory.generate import generate_from_recipe
    print("summary", generate_from_recipe(Path(sys.argv[1]), Catalog(sys.argv[2]),
          judges={"simulated": simulated_judge}, progress=False), flush=True)
'''

PROBLEMS = [f"medium problem {i}" for i in range(7)] + ["impossible problem"]


def make_catalog(path: Path, src: Path) -> Catalog:
    cat = Catalog(path)
    ingest(cat, src, IngestOptions(source="resume-test", kind="reasoning", domain="math"))
    return cat


def snapshot(cat: Catalog, run_id: str) -> dict[str, tuple]:
    g = cat.generations(run_id=run_id)
    return {r["generation_id"]: (r["prompt_id"], r["sample_index"], r["seed"], r["text"], r["answer"])
            for r in g.to_dicts()}


def test_kill_dash_nine_then_resume_equals_uninterrupted(tmp_path: Path, tiny_model_dir: Path,
                                                         vllm_llm: Any) -> None:
    from backends.vllm_backend import VLLMBackend

    judges = load_judges(tmp_path)
    src = tmp_path / "prompts.jsonl"
    src.write_text("\n".join(json.dumps({"problem": p, "answer": "1"}) for p in PROBLEMS) + "\n")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        f"backend: {{name: vllm, model: {tiny_model_dir}, max_model_len: 2048, gpu_memory_utilization: 0.3, "
        "enforce_eager: true}\n"
        "sampling: {temperature: 1.0, top_p: 1.0, max_tokens: 8}\n"
        "samples_per_prompt: 2\n"
        "budget: {max_samples: 6, round_size: 2, retry_samples: 2}\n"
        "judges: [simulated]\n"
        "output: {chunk_prompts: 1}\n"  # one commit per prompt: many moments to be killed at
    )
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)

    # 1. Start the run in its own process (own engine) and kill -9 its whole process group mid-run: after the
    # third commit, wherever the run has got by the time the kill lands; it cannot finish first, since it
    # stops at its sixth commit (of at least eight: one per prompt in round 1) to wait for the kill.
    killed_cat = make_catalog(tmp_path / "killed", src)
    proc = subprocess.Popen([sys.executable, str(script), str(recipe), str(tmp_path / "killed")],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True, env=dict(os.environ, PYTHONPATH=str(REPO), **SINGLE_PROCESS_ENGINE))
    commits = 0
    tail: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail = (tail + [line])[-30:]
            if "factory: committed" in line:
                commits += 1
                if commits == 3:
                    os.killpg(proc.pid, signal.SIGKILL)
                    break
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=60)
    assert commits == 3, "the subprocess ended before it was killed:\n" + "".join(tail)
    assert proc.returncode == -signal.SIGKILL

    run_id = sql(killed_cat, "select run_id from runs")[1][0][0]
    partial = snapshot(killed_cat, run_id)
    assert len(partial) >= 2  # at least the first commits survived

    # 2. Start it again with the same recipe (here on the shared engine: same model, same seeds).
    backend = VLLMBackend(llm=vllm_llm)
    resumed = generate_from_recipe(recipe, killed_cat, judges=judges, backend=backend, progress=False)
    assert resumed["status"] == "complete" and resumed["run_id"] == run_id
    after = snapshot(killed_cat, run_id)
    # Nothing from before the kill was lost or made again.
    assert {g: after[g] for g in partial} == partial
    assert resumed["samples_generated"] == len(after) - len(partial) > 0  # killed mid-run, finished now
    assert killed_cat.generations(run_id=run_id)["generation_id"].n_unique() == len(after)

    # 3. The same job uninterrupted, in a fresh catalog, batched differently (one call per round).
    fresh_cat = make_catalog(tmp_path / "fresh", src)
    whole = tmp_path / "whole.yaml"
    whole.write_text(recipe.read_text().replace("output: {chunk_prompts: 1}", "output: {chunk_prompts: null}"))
    ref = generate_from_recipe(whole, fresh_cat, judges=judges, backend=backend, progress=False)
    assert ref["run_id"] == run_id  # batching is not part of the run's identity
    # Same ids and seeds; the same texts but where vLLM's batch variance flips a token (see assert_same_samples).
    assert_same_samples(fresh_cat, killed_cat, run_id)

    # Same verdicts (one per generation), same per-prompt stats.
    v_killed = killed_cat.verdicts(list(after))
    assert len(v_killed) == len(after)
    assert sorted(zip(v_killed["generation_id"], v_killed["passed"])) == sorted(
        zip(*[fresh_cat.verdicts(list(after))[c] for c in ("generation_id", "passed")]))
    q = "select prompt_id, samples, accepted, status, rounds, tokens from prompt_stats order by prompt_id"
    assert sql(killed_cat, q)[1] == sql(fresh_cat, q)[1]
    statuses = {r[3] for r in sql(fresh_cat, q)[1]}
    assert "unsolved" in statuses
