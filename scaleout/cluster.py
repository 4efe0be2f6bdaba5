"""Joining a Ray cluster (or starting a local one) and sizing the workers on it."""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from catalogs.errors import UserError

log = logging.getLogger("scaleout")


class RayUnavailable(UserError):
    """Ray is not installed, or the cluster cannot be reached."""


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--engine ray needs Ray: pip install 'r1-factory[ray]' (or pip install 'ray[data]'; "
                             "not the ray[llm] extra, which replaces the installed vLLM)") from None
    return ray


def connect(address: str | None) -> Any:
    """`ray.init` on `address` (host:port of a running cluster, `auto`, or `ray://host:10001`), or a local cluster
    on this machine when None. Returns the ray module. The caller's working directory and environment are not
    shipped: every node runs the installed r1-factory."""
    ray = import_ray()
    if ray.is_initialized():
        return ray
    # Workers' output stays in their nodes' Ray session folders (session_latest/logs): streamed to this process, Ray
    # writes it, and its own notices, to stdout, where a command's --json output must stand alone.
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"--address {address}" if address else "a local Ray cluster"
        hint = (" A cluster started with token authentication needs RAY_AUTH_MODE=token in this shell too."
                if address else "")
        raise RayUnavailable(f"could not connect to {where}: {str(exc).splitlines()[0] if str(exc) else exc!r}."
                             f" Check the address (`ray status` on the head node prints it).{hint}") from None
    return ray


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[Any]:
    """Connected to the cluster for the span of a command, with this process's stdout kept for the command's own
    output: Ray prints its notices (a worker that died, say) to stdout from a thread of its own, so while
    connected stdout goes to stderr, and Ray is disconnected before it is given back. A session the caller
    opened (a script that called ray.init) is left open."""
    ray = import_ray()
    ours = not ray.is_initialized()
    with contextlib.redirect_stdout(sys.stderr):
        try:
            yield connect(address)
        finally:
            if ours and ray.is_initialized():
                ray.shutdown()


@dataclass(frozen=True)
class WorkerShape:
    """What one engine worker reserves: a GPU each (or `gpus` for tensor parallelism), or one CPU without GPUs."""

    count: int
    gpus: float
    cpus: float

    @property
    def on_gpu(self) -> bool:
        return self.gpus > 0


def engine_workers(ray: Any, wanted: int | None, gpus_per_engine: int = 1) -> WorkerShape:
    """One engine per `gpus_per_engine` GPUs of the cluster; on a cluster without GPUs, or for a client of a served
    model (`gpus_per_engine=0`: the openai backend), one per CPU."""
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0)) if gpus_per_engine > 0 else 0
    cpus = int(resources.get("CPU", 1))
    if gpus:
        fits = max(1, gpus // max(1, gpus_per_engine))
        count = min(wanted, fits) if wanted else fits
        if wanted and wanted > fits:
            log.warning("--workers %d: the cluster has %d GPU(s), room for %d engine(s) of %d GPU(s); using %d",
                        wanted, gpus, fits, gpus_per_engine, count)
        return WorkerShape(count, float(max(1, gpus_per_engine)), 1.0)
    count = wanted or max(1, cpus)
    return WorkerShape(count, 0.0, 1.0)


def cpu_bind_env(index: int) -> dict[str, str]:
    """On the CPU build of vLLM every engine pins its threads to core 0 unless told otherwise: give each worker a
    core of its own (round robin over this machine's cores; a node with as many cores sees the same spread)."""
    cores = os.cpu_count() or 1
    return {"VLLM_CPU_OMP_THREADS_BIND": str(index % cores)}


def stdout_to_stderr() -> None:
    """In a worker: send its stdout (and its children's, vLLM's engine process included) to its stderr. Ray
    copies a worker's stdout to the driver's stdout, where `--json` output must stand alone; stderr is the
    log's place anyway."""
    import sys

    sys.stdout.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
