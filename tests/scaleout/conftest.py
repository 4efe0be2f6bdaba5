"""A real two-node Ray cluster on loopback for the scale-out tests: `ray start --head` plus a second node.

Ray keeps its sessions under RAY_TMPDIR and an auth token under $HOME/.ray; both point at a folder of this
test run, removed at the end. Each node runs in the foreground (`--block`) in a process group of its own, so
teardown stops exactly the processes this fixture started.
"""
from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import free_port, stop_process_group

REPO = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 120.0


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
                RAY_DEDUP_LOGS="0")


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
        for p in reversed(procs):
            stop_process_group(p)
        shutil.rmtree(root, ignore_errors=True)
