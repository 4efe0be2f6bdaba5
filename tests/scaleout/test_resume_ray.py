"""Resuming across engines, from states built on purpose rather than by a kill's timing.

- A local run stopped by Ctrl-C after its first round, then shaped into every partial state a shard can hold
  (finished prompts, samples whose verdicts were never committed, leases and a staging folder left by a process
  killed with -9), resumed with `--engine ray`: the catalog equals an uninterrupted local run's, row by row.
- A Ray run interrupted (Ctrl-C) with its workers frozen mid-run, resumed with the local engine: the same.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from catalogs import Catalog
from factory.generate import generate_from_recipe
from tests.scaleout.conftest import REPO, LocalRun, RayCluster, make_catalog
from tests.scaleout.test_generate_ray import (
    assert_same_catalog,
    freeze_mid_run,
    r1f,
    signal_all,
    start_driver,
    table,
)

# A process that leases prompts of a run and stages samples of them, then dies with kill -9 before it registers
# anything: what `r1f generate` leaves when it is killed mid-batch.
DEAD_WRITER = """
import json, os, signal, sys
from pathlib import Path
from catalogs.store import STAGING_DIR, Catalog, this_process
root, run_id, leased, rows = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(Path(sys.argv[4]).read_text())
cat = Catalog(root, create=False)
assert cat.claim_prompts(run_id, leased).claimed == leased
me = this_process()
staging = cat.root / STAGING_DIR / f"{me.pid}-{me.started_cs}-{me.host_tag}-dead"
staging.mkdir(parents=True)
cat.stage_generations(rows, staging)
os.kill(os.getpid(), signal.SIGKILL)
"""


class CtrlCOnCall:
    """The real engine; the user presses Ctrl-C (a real SIGINT) when the run makes its `n`-th engine call."""

    def __init__(self, inner: Any, n: int) -> None:
        self.inner, self.name, self.n, self.calls = inner, inner.name, n, 0

    def generate(self, requests: list[Any]) -> list[Any]:
        self.calls += 1
        if self.calls == self.n:
            os.kill(os.getpid(), signal.SIGINT)
        return self.inner.generate(requests)

    def close(self) -> None:
        pass


def rows_of(cat: Catalog, run_id: str, prompt_ids: list[str], indices: set[int]) -> list[dict[str, Any]]:
    return [r for r in cat.generations(run_id=run_id).to_dicts()
            if r["prompt_id"] in prompt_ids and r["sample_index"] in indices]


def verdicts_of(cat: Catalog, gens: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = cat.verdicts([g["generation_id"] for g in gens]).to_dicts()
    for v in out:
        v["details"] = json.loads(v["details"]) if isinstance(v["details"], str) else v["details"]
    return out


def test_local_run_shaped_into_partial_shards_resumes_on_ray(tmp_path: Path, local_run: LocalRun, vllm_llm: Any,
                                                             ray_cluster: RayCluster) -> None:
    from backends.vllm_backend import VLLMBackend

    src, recipe, local_cat, local = local_run.src, local_run.recipe, local_run.cat, local_run.summary
    run_id, total = local["run_id"], local["samples_total"]

    # Started with the local engine: Ctrl-C at the second round's call leaves every prompt with its first round
    # (3 samples, judged) and nothing of its retry.
    ray_dir = tmp_path / "ray"
    cat = make_catalog(ray_dir, src)
    stopped = generate_from_recipe(recipe, cat, backend=CtrlCOnCall(VLLMBackend(llm=vllm_llm), 2), progress=False)
    assert stopped["status"] == "interrupted" and stopped["run_id"] == run_id
    assert table(cat, "SELECT count(*) FROM generation_meta")[0][0] == 3 * len(local_cat.prompts())

    # Every state a prompt of a shard can be in, by prompt (shards are cut in prompt order, so each shard mixes
    # them): 0 finished; 1 its samples' verdicts never committed (killed between the two commits); 2 one sample
    # of its retry committed without a verdict; 3 leased by a dead process that staged a retry sample and never
    # registered it; 4 and 5 left after the first round.
    ids = sorted(local_cat.prompts()["prompt_id"].to_list())
    group = {g: [p for i, p in enumerate(ids) if i % 6 == g] for g in range(6)}
    finished = rows_of(local_cat, run_id, group[0], {3, 4})
    cat.add_generations(finished)
    cat.add_verdicts(verdicts_of(local_cat, finished))
    with cat.connect(write=True) as con:
        con.execute("DELETE FROM verdicts WHERE generation_id IN (SELECT generation_id FROM generation_meta "
                    "WHERE prompt_id IN (SELECT unnest(?)))", [group[1]])
    cat.add_generations(rows_of(local_cat, run_id, group[2], {3}))
    staged = tmp_path / "staged.json"
    staged.write_text(json.dumps(rows_of(local_cat, run_id, group[3], {3})))
    dead = subprocess.run([sys.executable, "-c", DEAD_WRITER, str(ray_dir), run_id, json.dumps(group[3]),
                           str(staged)], cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert dead.returncode == -signal.SIGKILL, dead.stderr
    assert len(table(cat, "SELECT * FROM cat.main.leases")) == len(group[3])
    assert list((ray_dir / "staging").glob("*-dead/*.parquet"))
    before = table(cat, "SELECT count(*) FROM generation_meta")[0][0]
    owed = table(cat, "SELECT count(*) FROM generation_meta g ANTI JOIN cat.main.verdicts v USING "
                      "(generation_id)")[0][0]
    assert before == 3 * len(ids) + 2 * len(group[0]) + len(group[2])
    assert owed == 3 * len(group[1]) + len(group[2])

    # Resumed with the Ray engine: the dead process's leases and staging are cleared, owed verdicts are judged in
    # the workers, and only what is missing is sampled.
    env = dict(ray_cluster.env, R1F_LOG_LEVEL="INFO")
    res = r1f("generate", str(recipe), "--engine", "ray", "--address", ray_cluster.address, "--workers", "2",
              "--catalog", str(ray_dir), "--json", env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-4000:]
    summary = json.loads(res.stdout)
    assert summary["status"] == "complete" and summary["engine"] == "ray" and summary["run_id"] == run_id
    assert summary["samples_generated"] == total - before
    for key in ("prompts", "solved", "unsolved", "open", "samples_total", "accepted_total"):
        assert summary[key] == local[key], key
    assert not list((ray_dir / "staging").glob("*-dead"))
    assert_same_catalog(cat, local_cat, run_id)


def test_ray_run_interrupted_resumes_with_the_local_engine(tmp_path: Path, local_run: LocalRun, vllm_llm: Any,
                                                          ray_cluster: RayCluster) -> None:
    from backends.vllm_backend import VLLMBackend

    src, recipe, local_cat, local = local_run.src, local_run.recipe, local_run.cat, local_run.summary
    total = local["samples_total"]
    ray_dir = tmp_path / "ray"
    cat = make_catalog(ray_dir, src)
    log_path = tmp_path / "driver.log"
    driver = start_driver(recipe, ray_dir, ray_cluster, log_path)
    frozen: list[int] = []
    try:
        frozen = freeze_mid_run(driver, log_path)  # mid-run for certain: no worker can finish a shard now
        os.kill(driver.pid, signal.SIGINT)  # Ctrl-C
        signal_all(frozen, signal.SIGCONT)  # the driver cancels their shards and stops them
        frozen = []
        out, _ = driver.communicate(timeout=300)
    finally:
        signal_all(frozen, signal.SIGCONT)
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=60)
    assert driver.returncode == 0, log_path.read_text()[-4000:]
    interrupted = json.loads(out)
    assert interrupted["status"] == "interrupted", interrupted
    before = table(cat, "SELECT count(*) FROM generation_meta")[0][0]
    assert 0 < before < total
    assert not table(cat, "SELECT * FROM cat.main.leases")

    # Resumed with the local engine, in this process: only what is missing is sampled.
    resumed = generate_from_recipe(recipe, cat, backend=VLLMBackend(llm=vllm_llm), progress=False)
    assert resumed["status"] == "complete" and resumed["run_id"] == local["run_id"]
    assert resumed["samples_generated"] == total - before
    for key in ("prompts", "solved", "unsolved", "open", "samples_total", "accepted_total"):
        assert resumed[key] == local[key], key
    assert_same_catalog(cat, local_cat, local["run_id"])
