"""A real two-node Ray cluster on loopback for the scale-out tests: `ray start --head` plus a second node.

Ray keeps its sessions under RAY_TMPDIR and an auth token under $HOME/.ray; both point at a folder of this
test run, removed at the end. Each node runs in the foreground (`--block`) in a process group of its own, so
teardown stops exactly the processes this fixture started.

The Ray runs of the generate tests are compared with one uninterrupted local run of the same recipe on the shared
engine (`local_run`), made once for the package: the tests only read it.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest
from tests.helpers import SINGLE_PROCESS_ENGINE, free_port, stop_process_groups

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 120.0
PROBLEMS = [f"What is {i} plus {i + 3}?" for i in range(36)]


@dataclass
class RayCluster:
    address: str
    env: dict[str, str]
    root: Path
    logs: Path


def ray_env(root: Path) -> dict[str, str]:
    """The environment every process of the cluster (and every driver joining it) runs with."""
    home = root / "home"
    home.mkdir(exist_ok=True)
    # Token authentication, as a multi-node cluster should run; the token is this test run's own.
    return dict(os.environ, RAY_TMPDIR=str(root), HOME=str(home), RAY_AUTH_MODE="token",
                RAY_AUTH_TOKEN=secrets.token_hex(32),
                RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(REPO), VLLM_CPU_KVCACHE_SPACE="1",
                RAY_DEDUP_LOGS="0", **SINGLE_PROCESS_ENGINE)


def _wait_nodes(env: dict[str, str], address: str, n: int, procs: list[subprocess.Popen], logs: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    out = ""
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a Ray node exited with {p.returncode}; see {logs}")
        res = subprocess.run([RAY, "status", "--address", address], env=env, capture_output=True, text=True,
                             check=False)
        out = res.stdout + res.stderr
        if res.returncode == 0 and out.count("node_") >= n:
            return
        time.sleep(1.0)
    raise RuntimeError(f"the Ray cluster at {address} did not show {n} nodes in {START_TIMEOUT_S:.0f}s:\n{out}")


@pytest.fixture(scope="package")
def ray_cluster() -> Iterator[RayCluster]:
    # Short: Ray's unix socket paths live under it and must stay under 108 characters.
    root = Path(tempfile.mkdtemp(prefix="r1f-ray-", dir="/tmp"))
    env = ray_env(root)
    port = free_port()
    address = f"127.0.0.1:{port}"
    logs = root / "nodes.log"
    common = ["--block", "--disable-usage-stats", "--num-cpus", "1", "--num-gpus", "0"]
    procs: list[subprocess.Popen] = []
    try:
        with open(logs, "ab") as log:
            procs.append(subprocess.Popen(
                [RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                 "--include-dashboard", "false", "--temp-dir", str(root), *common],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            _wait_nodes(env, address, 1, procs, logs)
            procs.append(subprocess.Popen(
                [RAY, "start", "--address", address, "--node-ip-address", "127.0.0.1", *common],
                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        _wait_nodes(env, address, 2, procs, logs)
        yield RayCluster(address, env, root, logs)
    finally:
        # Both nodes at once, then 5 s together before SIGKILL ends what is left of their process groups. An idle
        # cluster stops in 1-2 s this way (the head on an interrupt: on SIGTERM it lingers); after a session of
        # jobs the head may not stop at all, and one node after the other, 20 s each, had cost 21-40 s.
        stop_process_groups([(p, signal.SIGINT if i == 0 else signal.SIGTERM) for i, p in enumerate(procs)], 5.0)
        shutil.rmtree(root, ignore_errors=True)


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


@dataclass(frozen=True)
class LocalRun:
    """The prompts (`src`), the recipe, and an uninterrupted local run of it: its catalog and its summary."""

    src: Path
    recipe: Path
    cat: Catalog
    summary: dict[str, Any]


@pytest.fixture(scope="package")
def local_run(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, vllm_llm: Any) -> LocalRun:
    """The reference every Ray run of the recipe must equal, made once on the shared engine; tests only read it."""
    from backends.vllm_backend import VLLMBackend
    from factory.generate import generate_from_recipe

    root = tmp_path_factory.mktemp("local-run")
    src = root / "prompts.jsonl"
    src.write_text("\n".join(json.dumps({"problem": p, "answer": "1"}) for p in PROBLEMS) + "\n")
    recipe = write_recipe(root / "recipe.yaml", tiny_model_dir)
    cat = make_catalog(root / "local", src)
    summary = generate_from_recipe(recipe, cat, backend=VLLMBackend(llm=vllm_llm), progress=False)
    assert summary["status"] == "complete" and summary["rounds"] == 2
    return LocalRun(src, recipe, cat, summary)
