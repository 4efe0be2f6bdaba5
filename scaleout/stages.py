"""`r1f judge RECIPE --engine ray` and `r1f filter RECIPE --engine ray`: the stage driver (catalogs.stage) with
its pure parts as Ray tasks.

The driver streams batches from the catalog, as locally; each batch's pure work (rule judges, the pure filters,
dedup's MinHash) runs as a Ray task on a CPU of the cluster; results come back to the driver, which is the one
process that writes verdicts and decisions, in large transactions. What must see rows in catalog order runs on
the driver, batch after batch in that order: dedup's index (the first seen is kept) and decontamination.
Model judges (llm_judge, helpfulness, harmlessness) ask their model from the driver too: their work is the
served model's, wherever it runs.

A task whose worker dies is retried by Ray on another worker: a task only computes, so running it twice
changes nothing, and nothing is written until its result is back on the driver.

The code judge runs programs in a sandbox. Before the first batch, every node is asked which isolation tool
works there (the same probe the judge runs), and code-judging batches go only to nodes where one works; with
none on the cluster the command stops before judging, naming each node and why.
"""
from __future__ import annotations

import itertools
import logging
import socket
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any

from catalogs.errors import UserError
from scaleout.cluster import ray_session, stdout_to_stderr

if TYPE_CHECKING:
    from catalogs.store import Catalog

log = logging.getLogger("scaleout")


PROBE_TIMEOUT_S = 120.0


class SandboxMissing(UserError):
    """No node of the cluster can run the code judge's sandbox."""


class RayExecutor(Executor):
    """`submit(fn, *args)` as a Ray task (one CPU each; retried if its worker dies), returning a Future: what the
    stage driver expects of a process pool. `nodes`: run only on these node ids (round robin)."""

    def __init__(self, ray: Any, *, nodes: list[str] | None = None, num_cpus: float = 1.0,
                 max_retries: int = 3) -> None:
        self.ray = ray
        self.nodes = itertools.cycle(nodes) if nodes else None
        self.options: dict[str, Any] = {"num_cpus": num_cpus, "max_retries": max_retries,
                                        "retry_exceptions": False}
        self._remote: dict[Callable[..., Any], Any] = {}
        self.submitted = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self.ray.remote(_quiet_stdout(fn))
        options = dict(self.options)
        if self.nodes is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(next(self.nodes), soft=False)
        self.submitted += 1
        return remote.options(**options).remote(*args, **kwargs).future()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        pass  # tasks belong to the cluster; what is in flight when the driver stops is simply not written


def _quiet_stdout(fn: Callable[..., Any]) -> Callable[..., Any]:
    def run(*args: Any, **kwargs: Any) -> Any:
        stdout_to_stderr()
        return fn(*args, **kwargs)

    run.__name__ = run.__qualname__ = getattr(fn, "__name__", "task")
    return run


def _isolation_here() -> tuple[str, str | None, str]:
    from judges.sandbox import isolation_available, isolation_problem

    return socket.gethostname(), isolation_available(), isolation_problem()


def sandbox_nodes(ray: Any) -> list[str]:
    """Ids of the live nodes where the code judge's sandbox works; an error naming every node's problem if none."""
    from ray.exceptions import GetTimeoutError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(_isolation_here)
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    refs = [probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote()
            for n in nodes]
    try:
        answers = ray.get(refs, timeout=PROBE_TIMEOUT_S)
    except GetTimeoutError:
        raise SandboxMissing(f"the code judge needs a sandbox, and the Ray cluster's nodes did not answer the sandbox "
                             f"probe within {PROBE_TIMEOUT_S:.0f} s (a worker that cannot start, or a busy cluster); "
                             f"see the nodes' session_latest/logs/raylet.err") from None
    good = [n for n, (_, tool, _) in zip(nodes, answers) if tool]
    for n, (host, tool, why) in zip(nodes, answers):
        log.info("node %s (%s): sandbox %s", n[:8], host, tool or f"unavailable: {why}")
    if not good:
        listed = "; ".join(f"{host} ({n[:8]}): {why}" for n, (host, _, why) in zip(nodes, answers))
        raise SandboxMissing(f"the code judge needs a sandbox, and no node of the Ray cluster has a working one: "
                             f"{listed}. Install bubblewrap on the worker nodes (apt-get install bubblewrap), or "
                             f"run this judge without --engine ray on a machine that has it.")
    return good


def _workers(ray: Any, wanted: int | None) -> int:
    return wanted or max(1, int(ray.cluster_resources().get("CPU", 1)))


def judge_on_ray(catalog: Catalog, recipe: Any, progress: Callable[[str, int, int], None] | None = None, *,
                 address: str | None = None, workers: int | None = None) -> dict[str, dict[str, int]]:
    """`judges.run.judge_catalog` with rule judges as Ray tasks; returns its counts per judge."""
    from judges.run import judge_catalog

    with ray_session(address) as ray:
        needs_sandbox = any(s.name == "code" and not s.params.get("unsafe_local") for s in recipe.judges)
        nodes = sandbox_nodes(ray) if needs_sandbox else None
        n = _workers(ray, workers)
        log.info("judging on Ray: %d task(s) in flight%s", n,
                 f", on the {len(nodes)} node(s) with a sandbox" if nodes else "")
        executor = RayExecutor(ray, nodes=nodes)
        return judge_catalog(catalog, recipe.model_copy(update={"workers": n}), progress, executor=executor)


def filter_on_ray(catalog: Catalog, recipe: Any, progress: Callable[[str, int, int], None] | None = None, *,
                  address: str | None = None, workers: int | None = None) -> dict[str, dict[str, int]]:
    """`filters.run.filter_catalog` with the pure filters and dedup's MinHash as Ray tasks; dedup's index and
    decontamination stay on the driver, in catalog order."""
    from filters.run import filter_catalog

    with ray_session(address) as ray:
        n = _workers(ray, workers)
        log.info("filtering on Ray: %d task(s) in flight; ordered filters on the driver", n)
        return filter_catalog(catalog, recipe.model_copy(update={"workers": n}), progress,
                              executor=RayExecutor(ray))
