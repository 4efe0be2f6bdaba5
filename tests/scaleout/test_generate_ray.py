"""`r1f generate --engine ray` on a real two-node Ray cluster with the CPU vLLM engine: the same catalog as a local
run of the recipe, row by row, even with a worker and then the driver killed mid-run; readers keep working during
the run.

Every kill lands at a state the test has seen, never at a time: the workers are frozen (SIGSTOP) once the first
shard is registered, so the run is certainly mid-way (shards are left, and no worker can finish one) while the
readers run and while a worker is killed, whatever the machine's load."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from catalogs import Catalog
from tests.helpers import assert_same_samples, r1f_batch
from tests.scaleout.conftest import PROBLEMS, REPO, LocalRun, RayCluster, make_catalog

R1F = [sys.executable, "-m", "r1f"]  # the face hands `--engine ray` to the stage commands (r1f/engines.py)


def table(cat: Catalog, sql: str) -> list[tuple[Any, ...]]:
    with cat.reader() as con:
        return con.execute(sql).fetchall()


def r1f(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*R1F, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


T = TypeVar("T")
HANG_S = 600.0  # only keeps a hung run from blocking CI: no assertion depends on how long a state takes


def wait_for(what: str, state: Callable[[], T | None], proc: subprocess.Popen[str], log: Path) -> T:
    """Poll until `state()` is truthy and return it: the test waits for a state, never for a time."""
    deadline = time.monotonic() + HANG_S
    while True:
        got = state()
        if got:
            return got
        assert proc.poll() is None, f"the driver exited ({proc.returncode}) before {what}:\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"no {what} after {HANG_S:.0f}s (hung):\n{log.read_text()[-4000:]}"
        time.sleep(0.05)


def worker_pids(log: Path, n: int) -> list[int] | None:
    """The pids of the driver's `n` engine workers, once it has logged them all ready."""
    pids = [int(p) for p in re.findall(r"ray worker \d+ ready: pid (\d+)", log.read_text())]
    return pids[:n] if len(pids) >= n else None


def registered(log: Path) -> int:
    return len(re.findall(r"shard \d+ registered", log.read_text()))


def in_flight(root: Path) -> int:
    """Shards handed to a worker and not yet registered or discarded: the driver makes a staging folder for each
    right before handing it out and removes it once the shard is registered or lost."""
    return sum(1 for d in (root / "staging").glob("*-ray*") if d.is_dir())


def freeze_mid_run(driver: subprocess.Popen[str], log_path: Path) -> list[int]:
    """Once both workers are ready and a shard is registered, freeze both workers (SIGSTOP) and return their
    pids: from then on no shard can finish, so the run is mid-way whatever the machine's load (it has 8 shards;
    at most one more result, already on its way to the driver, can still be registered)."""
    pids = wait_for("two workers ready", lambda: worker_pids(log_path, 2), driver, log_path)
    wait_for("a registered shard", lambda: registered(log_path), driver, log_path)
    signal_all(pids, signal.SIGSTOP)
    return pids


def signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def start_driver(recipe: Path, root: Path, cluster: RayCluster, log_path: Path,
                 workers: int = 2) -> subprocess.Popen[str]:
    env = dict(cluster.env, R1F_LOG_LEVEL="INFO")
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [*R1F, "generate", str(recipe), "--engine", "ray", "--address", cluster.address, "--workers",
             str(workers), "--catalog", str(root), "--json"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)


def assert_same_catalog(got: Catalog, want: Catalog, run_id: str) -> None:
    """Row by row: the same generation ids, seeds and texts, verdicts and prompt stats; no duplicate, nothing
    lost; nothing left staged or leased."""
    assert_same_samples(got, want, run_id)
    stats = "SELECT prompt_id, samples, accepted, status, rounds FROM prompt_stats ORDER BY prompt_id"
    assert table(got, stats) == table(want, stats)
    verdicts = "SELECT generation_id, judge, judge_version, passed FROM verdicts ORDER BY ALL"
    assert table(got, verdicts) == table(want, verdicts)
    n, distinct, shard_rows = table(got, "SELECT count(*), count(DISTINCT generation_id), "
                                         "(SELECT sum(rows) FROM cat.main.shards) FROM generation_meta")[0]
    total = table(want, "SELECT count(*) FROM generation_meta")[0][0]
    assert n == distinct == shard_rows == total
    assert not any((got.root / "staging").glob("*/*")), list((got.root / "staging").rglob("*"))
    assert not table(got, "SELECT * FROM cat.main.leases")


def test_ray_run_with_a_worker_and_the_driver_killed_equals_local_run(tmp_path: Path, local_run: LocalRun,
                                                                      ray_cluster: RayCluster) -> None:
    src, recipe, local_cat, local = local_run.src, local_run.recipe, local_run.cat, local_run.summary
    total = local["samples_total"]

    # The same recipe on the cluster: two workers, one per node.
    ray_dir = tmp_path / "ray"
    ray_cat = make_catalog(ray_dir, src)
    log_path = tmp_path / "driver.log"
    driver = start_driver(recipe, ray_dir, ray_cluster, log_path)
    frozen: list[int] = []
    try:
        pids = freeze_mid_run(driver, log_path)
        frozen = list(pids)

        # Readers work while the run holds the catalog: they see what is registered so far. (The three commands
        # run in one process, each as `r1f` runs it: one interpreter start instead of three.)
        first = table(ray_cat, "SELECT generation_id FROM generation_meta LIMIT 1")[0][0]
        cmds = {"stats": ["stats", "--json"], "sql": ["sql", "SELECT count(*) AS n FROM generation_meta", "--json"],
                "show": ["show", first]}
        ran = r1f_batch([[*args, "--catalog", str(ray_dir)] for args in cmds.values()], ray_cluster.env)
        readers = dict(zip(cmds, ran))
        assert driver.poll() is None, "the run ended with its workers frozen:\n" + log_path.read_text()[-4000:]
        for name, res in readers.items():
            assert res.returncode == 0, f"r1f {name} during the run: {res.stderr}"
        assert 0 < json.loads(readers["sql"].stdout)[0]["n"] < total
        assert "ray-test" in readers["show"].stdout

        # A worker killed mid-shard: each worker holds a shard once the driver has handed out two; the driver
        # sees the loss, removes that shard's staging folder unregistered and queues the shard again.
        wait_for("a shard in flight on each worker", lambda: in_flight(ray_dir) == 2, driver, log_path)
        victim = pids[0]
        n_registered = registered(log_path)
        os.kill(victim, signal.SIGKILL)
        frozen.remove(victim)
        # The driver sees the loss. (Had the kill landed between the driver making a shard's staging folder and
        # handing the shard over, Ray would hand it to the restarted worker instead, which then registers it.)
        wait_for("the driver seeing its worker's loss",
                 lambda: "lost with its worker" in log_path.read_text() or registered(log_path) > n_registered,
                 driver, log_path)
        # Then the driver itself, with kill -9, mid-run.
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
            driver.wait(timeout=60)
        signal_all(frozen, signal.SIGCONT)  # what is left of the dead driver's job goes with it
    assert driver.returncode == -signal.SIGKILL, log_path.read_text()[-4000:]
    before = table(ray_cat, "SELECT count(*) FROM generation_meta")[0][0]
    assert 0 < before < total

    # The same command resumes; only what was missing is sampled.
    env = dict(ray_cluster.env, R1F_LOG_LEVEL="INFO")
    resumed = r1f("generate", str(recipe), "--engine", "ray", "--address", ray_cluster.address, "--workers", "2",
                  "--catalog", str(ray_dir), "--json", env=env, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    summary = json.loads(resumed.stdout)  # stdout holds the summary alone: workers' output goes to stderr
    assert summary["status"] == "complete" and summary["engine"] == "ray" and summary["workers"] >= 1
    assert summary["samples_generated"] == total - before
    assert summary["run_id"] == local["run_id"]
    for key in ("prompts", "solved", "unsolved", "open", "samples_total", "accepted_total"):
        assert summary[key] == local[key], key
    # Half-written shards (the dead worker's, the dead driver's) were never registered; their staging is gone.
    assert_same_catalog(ray_cat, local_cat, local["run_id"])

    # Again: nothing left to do, no cluster needed, nothing added. Stats lost for a shard (a driver killed between
    # registering its verdicts and its stats) are written again from the catalog, as a local rerun writes them.
    stats = "SELECT prompt_id, samples, accepted, status, rounds FROM prompt_stats ORDER BY prompt_id"
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
