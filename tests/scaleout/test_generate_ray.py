"""`r1f generate --engine ray` on a real two-node Ray cluster with the CPU vLLM engine: the same catalog as a local
run of the recipe, row by row, even with a worker killed mid-run; readers keep working during the run."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest
from factory.generate import generate_from_recipe
from tests.helpers import assert_same_samples
from tests.scaleout.conftest import REPO, RayCluster

R1F = [sys.executable, "-m", "r1f"]  # the face loads scaleout.cli, which registers `--engine ray`
PROBLEMS = [f"What is {i} plus {i + 3}?" for i in range(36)]


def make_catalog(path: Path, src: Path) -> Catalog:
    cat = Catalog(path)
    ingest(cat, src, IngestOptions(source="ray-test", kind="reasoning", domain="math"))
    return cat


def write_recipe(path: Path, model: Path) -> Path:
    # The tiny model is random: `format` fails every sample, so each prompt takes the adaptive path's first round
    # and its bounded retry before it is marked unsolved, two rounds, as in a local run.
    path.write_text(
        f"backend: {{name: vllm, model: {model}, max_model_len: 2048, gpu_memory_utilization: 0.3, "
        "enforce_eager: true, kv_cache_gb: 1}\n"
        "sampling: {temperature: 1.0, top_p: 1.0, max_tokens: 160}\n"
        "samples_per_prompt: 2\n"
        "budget: {max_samples: 6, round_size: 3, retry_samples: 2}\n"
        "judges: [format]\n")
    return path


def table(cat: Catalog, sql: str) -> list[tuple[Any, ...]]:
    with cat.reader() as con:
        return con.execute(sql).fetchall()


def r1f(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*R1F, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_ray_run_with_a_worker_and_the_driver_killed_equals_local_run(tmp_path: Path, tiny_model_dir: Path, vllm_llm: Any,
                                                       ray_cluster: RayCluster) -> None:
    from backends.vllm_backend import VLLMBackend

    src = tmp_path / "prompts.jsonl"
    src.write_text("\n".join(json.dumps({"problem": p, "answer": "1"}) for p in PROBLEMS) + "\n")
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_model_dir)

    # The reference: a local run, in this process, on the shared engine.
    local_cat = make_catalog(tmp_path / "local", src)
    local = generate_from_recipe(recipe, local_cat, backend=VLLMBackend(llm=vllm_llm), progress=False)
    assert local["status"] == "complete" and local["rounds"] == 2

    # The same recipe on the cluster: two workers, one per node; one is killed once it is mid-shard, then the
    # driver itself with kill -9; the same command resumes, with readers working while it runs.
    ray_dir = tmp_path / "ray"
    ray_cat = make_catalog(ray_dir, src)
    log_path = tmp_path / "driver.log"
    env = dict(ray_cluster.env, R1F_LOG_LEVEL="INFO")
    with open(log_path, "w") as log:
        driver = subprocess.Popen(
            [*R1F, "generate", str(recipe), "--engine", "ray", "--address", ray_cluster.address, "--workers", "2",
             "--catalog", str(ray_dir), "--json"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    killed = None
    saw_loss = False
    try:
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and driver.poll() is None:
            text = log_path.read_text()
            pids = [int(p) for p in re.findall(r"ray worker \d+ ready: pid (\d+)", text)]
            registered = re.findall(r"shard (\d+) registered", text)
            if killed is None and registered and len(pids) == 2:
                # The worker that registered the first shard is on its next one now: kill it mid-shard.
                by = re.search(r"shard \d+ registered: .* from [^:]+:(\d+)", text)
                killed = int(by.group(1)) if by else pids[0]
                os.kill(killed, signal.SIGKILL)
                # The driver sees the loss and queues the shard again (its staging folder removed unregistered);
                # then the driver itself is killed with -9, mid-run.
                loss_deadline = time.monotonic() + 60
                while "lost with its worker" not in log_path.read_text() and time.monotonic() < loss_deadline:
                    time.sleep(0.05)
                saw_loss = "lost with its worker" in log_path.read_text()
                os.killpg(driver.pid, signal.SIGKILL)
                break
            time.sleep(0.2)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    log_text = log_path.read_text()
    assert killed is not None, "the run ended before a worker could be killed:\n" + log_text[-4000:]
    assert driver.returncode == -signal.SIGKILL, log_text[-4000:]
    assert saw_loss, "the driver did not see its worker die:\n" + log_text[-4000:]
    before = table(ray_cat, "SELECT count(*) FROM generation_meta")[0][0]
    assert 0 < before < local["samples_total"]

    # The same command resumes. Readers run while it does (started once its workers are up, while their engines
    # load and sample): they see what is registered so far.
    resumed_log = tmp_path / "resumed.log"
    with open(resumed_log, "w") as log:
        resumed = subprocess.Popen(
            [*R1F, "generate", str(recipe), "--engine", "ray", "--address", ray_cluster.address, "--workers", "2",
             "--catalog", str(ray_dir), "--json"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while "ready: pid" not in resumed_log.read_text() and resumed.poll() is None:
            assert time.monotonic() < deadline, resumed_log.read_text()[-4000:]
            time.sleep(0.1)
        first = table(ray_cat, "SELECT generation_id FROM generation_meta LIMIT 1")[0][0]
        cmds = {"stats": ["stats", "--json"], "sql": ["sql", "SELECT count(*) AS n FROM generation_meta", "--json"],
                "show": ["show", first]}
        procs = {name: subprocess.Popen([*R1F, *args, "--catalog", str(ray_dir)], cwd=REPO, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name, args in cmds.items()}
        readers = {name: (p.communicate(timeout=120), p.returncode) for name, p in procs.items()}
        readers_during_run = resumed.poll() is None
        out, _ = resumed.communicate(timeout=600)
    finally:
        if resumed.poll() is None:
            os.killpg(resumed.pid, signal.SIGKILL)
            resumed.wait(timeout=60)
    for name, ((_, err), rc) in readers.items():
        assert rc == 0, f"r1f {name} during the run: {err}"
    assert readers_during_run, "the run ended before the readers did"
    assert 0 < json.loads(readers["sql"][0][0])[0]["n"] <= local["samples_total"]
    assert "ray-test" in readers["show"][0][0]

    assert resumed.returncode == 0, resumed_log.read_text()[-4000:]
    summary = json.loads(out)  # stdout holds the summary alone: workers' output goes to stderr
    assert summary["status"] == "complete" and summary["engine"] == "ray" and summary["workers"] >= 1
    assert summary["samples_generated"] == local["samples_total"] - before  # only what was missing
    assert summary["run_id"] == local["run_id"]
    for key in ("prompts", "solved", "unsolved", "open", "samples_total", "accepted_total"):
        assert summary[key] == local[key], key

    # Row by row: the same generation ids, seeds and texts; no duplicate, nothing lost.
    run_id = local["run_id"]
    assert_same_samples(ray_cat, local_cat, run_id)
    stats = "SELECT prompt_id, samples, accepted, status, rounds FROM prompt_stats ORDER BY prompt_id"
    assert table(ray_cat, stats) == table(local_cat, stats)
    verdicts = "SELECT generation_id, judge, judge_version, passed FROM verdicts ORDER BY ALL"
    assert table(ray_cat, verdicts) == table(local_cat, verdicts)
    n, distinct, shards_rows = table(
        ray_cat, "SELECT count(*), count(DISTINCT generation_id), (SELECT sum(rows) FROM cat.main.shards) FROM generation_meta")[0]
    assert n == distinct == shards_rows == local["samples_total"]
    # Half-written shards (the dead worker's, the dead driver's) were never registered; their staging is gone.
    assert not any((ray_dir / "staging").glob("*/*")), list((ray_dir / "staging").rglob("*"))
    assert not table(ray_cat, "SELECT * FROM cat.main.leases")

    # Again: nothing left to do, no cluster needed, nothing added. Stats lost for a shard (a driver killed between
    # registering its verdicts and its stats) are written again from the catalog, as a local rerun writes them.
    with ray_cat.connect(write=True) as con:
        con.execute("DELETE FROM prompt_stats WHERE prompt_id IN (SELECT prompt_id FROM prompt_stats "
                    "ORDER BY prompt_id LIMIT 5)")
    assert len(table(ray_cat, stats)) == len(PROBLEMS) - 5
    again = r1f("generate", str(recipe), "--engine", "ray", "--address", ray_cluster.address, "--catalog",
                str(ray_dir), "--json", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    summary2 = json.loads(again.stdout)
    assert summary2["samples_generated"] == 0 and summary2["workers"] == 0
    assert table(ray_cat, stats) == table(local_cat, stats)
