"""`r1f generate RECIPE --engine ray`: rejection sampling spread over Ray actors, one vLLM engine each.

The driver (the process that runs the command) is the only one that opens the catalog for writing:

- It selects the prompts, registers the run (the same run id as a local run of the recipe, so the same
  generation ids and seeds), reads what the catalog already holds for it, and cuts the unfinished prompts into
  shards.
- Each shard goes to an actor that owns one engine (one GPU, or `tensor_parallel_size` GPUs; one CPU core on
  a machine without GPUs). The actor runs the factory's own sampling loop (`factory.sampling.run_sampling`) on
  the shard's prompts, against a `ShardCatalog`: the shard's history handed over by the driver, and a staging
  folder where each committed batch becomes a Parquet file. A prompt's rounds depend on its own history only,
  so adaptive rounds hold exactly as in one process.
- When a shard is finished the driver registers its staging files in one catalog transaction, then the
  shard's verdicts and prompt stats (a verdict missing after a crash is judged again on resume, as locally).
- The driver leases a shard's prompts in the catalog before handing it out, so another `r1f generate` on the
  same catalog keeps off them, and lets go once the shard is registered.

A worker that dies mid-shard (its process killed, its node lost) has its staging folder removed unregistered,
and the shard goes back in the queue with a fresh folder: only that shard's unfinished work is redone, with the
same ids and seeds. A driver killed with -9 leaves leases and staging folders named after its own process,
which the next writer finds dead and clears; the same command resumes.
"""
from __future__ import annotations

import logging
import math
import shutil
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalogs.errors import CatalogError, UserError
from catalogs.progress import RunProgress, print_summary
from catalogs.store import STAGING_DIR, Catalog, PromptClaim, StagedBatch, remove_orphan_staging, this_process
from factory.generate import (
    check_prompt_lengths,
    policy_of,
    resolve_judges,
    run_params,
    sampling_job,
    select_prompts,
)
from factory.recipe import Recipe
from factory.sampling import GenerationStopped, Policy, StopGuard, run_sampling, stats_row
from factory.templates import template_from_recipe
from scaleout.cluster import cpu_bind_env, engine_workers, ray_session, stdout_to_stderr

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger("scaleout")

# A shard that lost its worker this many times stops the run (with what was registered kept).
MAX_ATTEMPTS = 3


# ---------------------------------------------------------------------------------------------------
# What the sampling loop sees inside a worker.

@dataclass
class ShardHistory:
    """What the catalog holds for a shard's prompts when it is handed out: generation metadata, the verdicts on
    them, and the texts of those still owed a verdict (they are judged in the worker, from the stored text)."""

    generations: list[dict[str, Any]] = field(default_factory=list)
    verdicts: list[dict[str, Any]] = field(default_factory=list)
    texts: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class ShardResult:
    shard: int
    attempt: int
    batches: list[StagedBatch]
    verdicts: list[dict[str, Any]]
    stats: list[dict[str, Any]]
    summary: dict[str, Any]
    host: str
    pid: int


class ShardCatalog:
    """The catalog, as `run_sampling` uses it, for one shard in a worker: reads come from the history the
    driver handed over; generations become Parquet staging files; verdicts and prompt stats are kept for the
    driver. The worker never opens the DuckDB file, so any number of workers never contend for its lock."""

    def __init__(self, root: Path, staging: Path, history: ShardHistory) -> None:
        if not (root / "catalog.duckdb").exists() or not staging.is_dir():
            raise CatalogError(
                f"this Ray worker (host {socket.gethostname()}) cannot see the catalog folder {root} or its "
                f"staging folder {staging}. Workers write their shards next to the catalog: put the catalog on "
                f"a filesystem every node mounts at the same path (NFS, Lustre, a shared volume) and pass that "
                f"path as --catalog.")
        self._stage = Catalog(root, create=False).stage_generations  # no connection: staging needs none
        self.staging = staging
        self.history = history
        self.batches: list[StagedBatch] = []
        # What the shard made, for the driver to register. Named apart from the reads (`verdicts()`): an attribute
        # of a method's name hides the method, which the type checker refuses (SamplingStore).
        self.new_verdicts: list[dict[str, Any]] = []
        self.new_stats: dict[str, dict[str, Any]] = {}
        self.stored: dict[str, int] = {}
        for g in history.generations:
            self.stored[g["prompt_id"]] = self.stored.get(g["prompt_id"], 0) + 1

    # reads
    def generations(self, run_id: str | None = None, where: str | None = None, *, with_text: bool = True,
                    ids: Sequence[str] | None = None) -> pl.DataFrame:
        import polars as pl

        if where is not None:
            # Only a prompt reread after another process sampled it asks with `where`; the driver holds this
            # shard's leases, so that never happens here.
            raise AssertionError("a shard's prompts are leased to its driver; nothing rereads them")
        rows = self.history.generations
        if ids is not None:
            wanted = set(ids)
            rows = [self.history.texts.get(r["generation_id"], r) for r in rows if r["generation_id"] in wanted]
        if with_text and ids is None:
            rows = [self.history.texts.get(r["generation_id"], r) for r in rows]
        return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()

    def verdicts(self, generation_ids: list[str] | None = None) -> pl.DataFrame:
        import polars as pl

        wanted = None if generation_ids is None else set(generation_ids)
        rows = [v for v in self.history.verdicts if wanted is None or v["generation_id"] in wanted]
        return pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()

    # leases: the driver holds them for the whole shard
    def claim_prompts(self, run_id: str, prompt_ids: Sequence[str], ttl_s: float = 0.0) -> PromptClaim:
        ids = list(dict.fromkeys(prompt_ids))
        return PromptClaim(ids, {}, {p: self.stored.get(p, 0) for p in ids})

    def renew_leases(self, run_id: str, ttl_s: float = 0.0) -> None:
        pass

    def release_prompts(self, run_id: str, prompt_ids: Sequence[str] | None = None,
                        stats: Sequence[dict[str, Any]] = (), verdicts: Sequence[dict[str, Any]] = ()) -> None:
        self.add_verdicts(verdicts)  # the leases are the driver's: only the verdicts and stats are the shard's
        self.set_prompt_stats(stats)

    # writes
    def add_generations(self, rows: Sequence[dict[str, Any]]) -> int:
        if not rows:
            return 0
        self.batches.append(self._stage(rows, self.staging))
        for r in rows:
            self.stored[r["prompt_id"]] = self.stored.get(r["prompt_id"], 0) + 1
        return len(rows)

    def add_verdicts(self, rows: Sequence[dict[str, Any]]) -> int:
        self.new_verdicts.extend(rows)
        return len(rows)

    def set_prompt_stats(self, rows: Sequence[dict[str, Any]]) -> None:
        for r in rows:
            self.new_stats[r["prompt_id"]] = dict(r)

    # No file is held here: nothing to keep attached, nothing to give back.
    @contextmanager
    def held(self) -> Iterator[None]:
        yield

    @contextmanager
    def released(self) -> Iterator[None]:
        yield


class GenerationWorker:
    """A Ray actor owning one engine, opened at its first shard with work and kept for the next ones."""

    def __init__(self, recipe: Recipe, run_id: str, catalog_root: str) -> None:
        import os

        stdout_to_stderr()
        self.recipe, self.run_id, self.root = recipe, run_id, Path(catalog_root)
        if self.recipe.backend.kv_cache_gb is None:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        self.template = template_from_recipe(recipe)
        self.judges = resolve_judges(recipe, None)
        self.backend: Any = None

    def where(self) -> tuple[str, int]:
        import os

        return socket.gethostname(), os.getpid()

    def _open(self) -> Any:
        if self.backend is None:
            from backends import get_backend
            from backends.config import backend_kwargs

            self.backend = get_backend(self.recipe.backend.name, **backend_kwargs(self.recipe.backend))
        return self.backend

    def run_shard(self, shard: int, attempt: int, prompts: list[dict[str, Any]], history: ShardHistory,
                  staging: str) -> ShardResult:
        import os

        job = sampling_job(self.recipe, self.template, self.judges, self.run_id, prompts,
                           "rerun the same command to resume")
        cat = ShardCatalog(self.root, Path(staging), history)
        try:
            summary = run_sampling(job, self._open, cat, None)
        except GenerationStopped as exc:  # what finished is staged: hand it over, and say the backend failed
            summary = {**exc.summary, "status": "backend_failed", "message": str(exc)}
        return ShardResult(shard, attempt, cat.batches, cat.new_verdicts, list(cat.new_stats.values()), summary,
                           socket.gethostname(), os.getpid())

    def close(self) -> None:
        if self.backend is not None:
            self.backend.close()
            self.backend = None


# ---------------------------------------------------------------------------------------------------
# The driver.

@dataclass
class _Shard:
    index: int
    prompts: list[dict[str, Any]]
    attempt: int = 0
    staging: Path | None = None

    @property
    def ids(self) -> list[str]:
        return [p["prompt_id"] for p in self.prompts]


def shard_size(n_prompts: int, workers: int) -> int:
    """Small enough that a lost worker costs little and every worker gets several shards; big enough that an
    engine gets a real batch (a shard's round goes to the engine in one call)."""
    return max(1, min(256, math.ceil(n_prompts / max(1, 4 * workers))))


def generate_on_ray(recipe: Recipe, catalog: Catalog, *, address: str | None = None, workers: int | None = None,
                    shard_prompts: int | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Run a prepared recipe (`factory.generate.prepare_recipe`) on a Ray cluster; returns the summary a local
    run returns, plus `engine`, `workers`, `shards` and `shards_redone`."""
    recipe_path = recipe.source_path or Path("<recipe>")
    template = template_from_recipe(recipe)
    prompts = select_prompts(recipe, catalog)
    check_prompt_lengths(recipe, template, prompts, None)
    run_id = catalog.add_run(run_params(recipe, template))
    resume_hint = (f"rerun `r1f generate {recipe_path} --engine ray` (or without --engine) with the same catalog "
                   "to resume (finished samples are kept and not generated again)")
    return sample_on_ray(recipe, catalog, run_id=run_id, prompts=prompts, resume_hint=resume_hint,
                         label=recipe.name or "generate", address=address, workers=workers,
                         shard_prompts=shard_prompts, progress=progress)


def sample_on_ray(recipe: Recipe, catalog: Catalog, *, run_id: str, prompts: list[dict[str, Any]],
                  resume_hint: str, label: str, address: str | None = None, workers: int | None = None,
                  shard_prompts: int | None = None, progress: bool | None = None) -> dict[str, Any]:
    """Sample `prompts` under the registered run `run_id` with the recipe's policy, engine and judges, in shards on
    a Ray cluster, resuming from what the catalog holds. `r1f generate --engine ray` selects the prompts from the
    recipe; `r1f eval --engine ray` hands in its benchmarks' prompts under an eval run."""
    bound = resolve_judges(recipe, None)
    policy = policy_of(recipe)
    t0 = time.monotonic()
    # Staging folders of a driver killed with -9 (named after its process, which is gone): never registered.
    remove_orphan_staging(catalog.root / STAGING_DIR)
    names = [j.name for j in bound]
    index = _Index(_history(catalog, run_id, bound), names)
    todo = [p for p in prompts if index.needs_work(policy, p["prompt_id"])]
    done_before = len(prompts) - len(todo)
    totals = {"generated": 0, "tokens": 0, "calls": 0, "rounds": 0, "redone": 0}
    per_prompt: dict[str, tuple[int, int, str]] = {}  # prompt -> (samples, accepted, status), from shards
    status, message, n_workers, shards_n = "complete", None, 0, 0

    if todo:
        with ray_session(address) as ray:
            # vllm: an engine per GPU (or tensor_parallel_size GPUs); openai: a client of a served model, on a CPU
            gpus_per_engine = int(recipe.backend.tensor_parallel_size or 1) if recipe.backend.name == "vllm" else 0
            shape = engine_workers(ray, workers, gpus_per_engine)
            size = shard_prompts or shard_size(len(todo), shape.count)
            queue = deque(_Shard(i, todo[s: s + size]) for i, s in enumerate(range(0, len(todo), size)))
            shards_n = len(queue)
            n_workers = min(shape.count, shards_n)
            log.info("run %s on Ray: %d prompts to sample (%d finished before) in %d shards of up to %d, %d "
                     "workers (%s each)", run_id, len(todo), done_before, shards_n, size, n_workers,
                     f"{shape.gpus:g} GPU" if shape.on_gpu else "1 CPU")
            # Ctrl-C or SIGTERM stop the run cleanly, but never in the middle of leasing or registering a shard.
            with RunProgress(len(prompts), label=label + " (ray)", enabled=progress) as bar, StopGuard() as guard:
                bar.update(prompts_done=done_before, accepted=0, generated=0, note=f"{shards_n} shards")
                try:
                    status, message = _drive(ray, recipe, run_id, catalog, bound, queue, shape, n_workers, index,
                                             totals, per_prompt, bar, done_before, resume_hint, guard)
                except KeyboardInterrupt:
                    status = "interrupted"
                    message = (f"interrupted: every finished shard is registered in the catalog "
                               f"({totals['generated']} sample(s) by this run); {resume_hint}")
                finally:
                    catalog.release_prompts(run_id)
                if message:
                    bar.message(message)

    # The summary counts from the catalog: what every shard (and any earlier run) registered.
    final = _Index(_history(catalog, run_id, bound), names)
    statuses, samples, accepted, tokens = [], 0, 0, 0
    finished_stats = []
    for p in prompts:
        hist = final.passes(p["prompt_id"])
        statuses.append(policy.plan(hist)[1])
        samples += len(hist)
        accepted += sum(hist)
        used = sum(int(g.get("completion_tokens") or 0) for g in final.gens.get(p["prompt_id"], ()))
        tokens += used
        if hist and policy.plan(hist)[0] == 0 and not final.texts.get(p["prompt_id"]):
            finished_stats.append(stats_row(policy, run_id, p["prompt_id"], hist, used))
    # As the local loop does: every finished prompt's stats are written from its final history, so a driver killed
    # after registering a shard's samples and verdicts but before its stats leaves none missing after the rerun.
    if finished_stats:
        catalog.set_prompt_stats(finished_stats)
    elapsed = time.monotonic() - t0
    summary = {
        "status": status, "run_id": run_id, "prompts": len(prompts),
        "solved": statuses.count("solved"), "unsolved": statuses.count("unsolved"), "open": statuses.count("open"),
        "samples_generated": totals["generated"], "samples_total": samples, "accepted_total": accepted,
        "accept_rate": accepted / samples if samples else 0.0, "tokens_generated": totals["tokens"],
        "tokens_per_s": totals["tokens"] / elapsed if elapsed > 0 else 0.0,
        "tokens_per_accepted": tokens / accepted if accepted else None,
        "rounds": totals["rounds"], "backend_calls": totals["calls"], "elapsed_s": round(elapsed, 3),
        "engine": "ray", "workers": n_workers, "shards": shards_n, "shards_redone": totals["redone"],
    }
    if message:
        summary["message"] = message
    print_summary(summary, enabled=progress)
    if status == "backend_failed":
        raise GenerationStopped(message or "the backend failed", summary)
    return summary


def _drive(ray: Any, recipe: Recipe, run_id: str, catalog: Catalog, bound: list[Any], queue: deque[_Shard],
           shape: Any, n_workers: int, index: _Index, totals: dict[str, int],
           per_prompt: dict[str, tuple[int, int, str]], bar: RunProgress, done_before: int,
           resume_hint: str, guard: StopGuard) -> tuple[str, str | None]:
    """Hand shards to workers as they free up, register each finished shard, redo a shard whose worker died."""
    from ray.exceptions import (
        ActorUnavailableError,
        NodeDiedError,
        ObjectLostError,
        OutOfMemoryError,
        RayActorError,
        WorkerCrashedError,
    )

    # What losing a worker looks like: its process killed or out of memory, its node gone, or the node holding
    # its finished result gone before the driver fetched it. Each costs only that shard, which is redone.
    lost = (RayActorError, WorkerCrashedError, NodeDiedError, ObjectLostError, OutOfMemoryError)

    actor_cls = ray.remote(GenerationWorker)
    actors = []
    for i in range(n_workers):
        opts: dict[str, Any] = {"num_cpus": shape.cpus, "num_gpus": shape.gpus,
                                # a killed worker comes back with a fresh engine; we redo its shard ourselves
                                "max_restarts": MAX_ATTEMPTS, "max_task_retries": 0}
        if not shape.on_gpu:
            opts["runtime_env"] = {"env_vars": cpu_bind_env(i)}
        actors.append(actor_cls.options(**opts).remote(recipe, run_id, str(catalog.root)))
    for i, (host, pid) in enumerate(ray.get([a.where.remote() for a in actors])):
        log.info("ray worker %d ready: pid %d on %s", i, pid, host)

    in_flight: dict[Any, tuple[int, _Shard]] = {}
    # A worker that died is being restarted by Ray: it gets work again once it answers a ping.
    pinging: dict[Any, int] = {}
    ping_later: list[tuple[float, int]] = []
    idle = list(range(n_workers))
    status, message = "complete", None
    held: dict[str, str] = {}
    stopping = False
    try:
        while (queue and not stopping) or in_flight:
            while idle and queue and not stopping:
                shard = queue.popleft()
                with guard.critical():  # a Ctrl-C waits for the lease's transaction
                    leased = _lease(catalog, run_id, bound, shard, index, held)
                if not leased:
                    continue
                a = idle.pop(0)
                shard.staging = _staging_folder(catalog, shard)
                ref = actors[a].run_shard.remote(shard.index, shard.attempt, shard.prompts, index.of(shard.ids),
                                                 str(shard.staging))
                in_flight[ref] = (a, shard)
            now = time.monotonic()
            for at, a in [x for x in ping_later if x[0] <= now]:
                ping_later.remove((at, a))
                pinging[actors[a].where.remote()] = a
            if not in_flight and not pinging and not ping_later:
                if queue and not stopping:
                    stopping, status = True, "backend_failed"
                    message = f"every Ray worker is gone; every finished shard is registered; {resume_hint}"
                break
            ready, _ = ray.wait([*in_flight, *pinging], num_returns=1, timeout=0.5 if ping_later else None)
            if not ready:
                continue
            ref = ready[0]
            if ref in pinging:
                a = pinging.pop(ref)
                try:
                    host, pid = ray.get(ref)
                except ActorUnavailableError:  # still restarting
                    ping_later.append((time.monotonic() + 1.0, a))
                except RayActorError:
                    log.warning("ray worker %d is gone for good (restarted %d times already)", a, MAX_ATTEMPTS)
                else:
                    log.info("ray worker %d is back: pid %d on %s", a, pid, host)
                    idle.append(a)
                continue
            a, shard = in_flight.pop(ref)
            try:
                result: ShardResult = ray.get(ref)
            except lost as exc:
                _discard(shard)
                catalog.release_prompts(run_id, shard.ids)
                totals["redone"] += 1
                shard.attempt += 1
                log.warning("shard %d lost with its worker (%s); its staging folder was removed unregistered and "
                            "its %d prompt(s) are redone (attempt %d)", shard.index, type(exc).__name__,
                            len(shard.prompts), shard.attempt + 1)
                if shard.attempt >= MAX_ATTEMPTS:
                    stopping, status = True, "backend_failed"
                    message = (f"shard {shard.index} lost its worker {shard.attempt} times; every finished shard "
                               f"is registered; {resume_hint}")
                else:
                    queue.appendleft(shard)
                pinging[actors[a].where.remote()] = a
                continue
            except Exception as exc:
                _discard(shard)
                cause = getattr(exc, "cause", None)  # a RayTaskError carries the worker's exception
                if isinstance(cause, UserError):
                    raise UserError(f"shard {shard.index} on a Ray worker: {cause}") from None
                raise
            with guard.critical():
                _register(catalog, run_id, shard, result, totals, per_prompt)
            idle.append(a)
            bar.update(prompts_done=done_before + len(per_prompt), accepted=sum(s[1] for s in per_prompt.values()),
                       generated=totals["generated"], new_tokens=int(result.summary.get("tokens_generated") or 0),
                       note=f"shard {shard.index} from {result.host}:{result.pid}")
            if result.summary.get("status") == "backend_failed" and not stopping:
                stopping, status = True, "backend_failed"
                message = f"{result.summary.get('message')} (shard {shard.index} on {result.host})"
            elif result.summary.get("status") == "interrupted" and not stopping:
                stopping, status = True, "interrupted"
                message = f"a worker was interrupted; every finished shard is registered; {resume_hint}"
    except BaseException:
        for ref, (_, shard) in in_flight.items():  # never registered: a rerun redoes them
            with _quiet():
                ray.cancel(ref, force=True)
            _discard(shard)
        raise
    finally:
        for actor in actors:
            with _quiet():
                ray.kill(actor)
    if held and status == "complete" and not queue:
        status = "left_to_others"
        message = (f"{len(held)} prompt(s) are being sampled by another process right now; they were left to it. "
                   f"When it has finished, {resume_hint.replace('to resume', 'to check that nothing is left')}")
    return status, message


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return True


def _lease(catalog: Catalog, run_id: str, bound: list[Any], shard: _Shard, index: _Index,
           held: dict[str, str]) -> bool:
    """Lease the shard's prompts to this driver; prompts another process holds are left to it. A prompt another
    process sampled since the history was read is read again, so that its worker asks only for what is missing.
    False when nothing of the shard is left to sample here."""
    claim = catalog.claim_prompts(run_id, shard.ids)
    held.update(claim.held)
    mine = set(claim.claimed)
    moved = [p for p in claim.claimed if claim.stored.get(p, 0) != index.count(p)]
    if moved:
        log.info("shard %d: %d prompt(s) were sampled by another process meanwhile; reading them again",
                 shard.index, len(moved))
        index.update(_history(catalog, run_id, bound, moved), moved)
    shard.prompts = [p for p in shard.prompts if p["prompt_id"] in mine]
    return bool(shard.prompts)


def _staging_folder(catalog: Catalog, shard: _Shard) -> Path:
    """Named after the driver (the committer), in the catalog's form `PID-START-HOST-TAG`: the next writer removes
    it as an orphan if the driver dies; while the driver lives it keeps it, and removes it itself if the worker
    dies."""
    me = this_process()
    d = catalog.root / STAGING_DIR / f"{me.pid}-{me.started_cs}-{me.host_tag}-ray{shard.index:05d}a{shard.attempt}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return d


def _discard(shard: _Shard) -> None:
    if shard.staging is not None:
        shutil.rmtree(shard.staging, ignore_errors=True)
        shard.staging = None


def _register(catalog: Catalog, run_id: str, shard: _Shard, result: ShardResult, totals: dict[str, int],
              per_prompt: dict[str, tuple[int, int, str]]) -> None:
    """One transaction for the shard's generations; then its verdicts and stats; then the leases go."""
    try:
        added = 0
        if result.batches:
            added = catalog.register_staged(result.batches)
        if result.verdicts:
            catalog.add_verdicts(result.verdicts)
        if result.stats:
            catalog.set_prompt_stats(result.stats)
    finally:
        _discard(shard)
    catalog.release_prompts(run_id, shard.ids)
    s = result.summary
    totals["generated"] += added
    totals["tokens"] += int(s.get("tokens_generated") or 0)
    totals["calls"] += int(s.get("backend_calls") or 0)
    totals["rounds"] = max(totals["rounds"], int(s.get("rounds") or 0))
    for row in result.stats:
        per_prompt[row["prompt_id"]] = (int(row["samples"]), int(row["accepted"]), str(row["status"]))
    for pid_ in shard.ids:
        per_prompt.setdefault(pid_, (0, 0, "done"))
    log.info("shard %d registered: %d generation(s), %d verdict(s) from %s:%d", shard.index, added,
             len(result.verdicts), result.host, result.pid)


# ---------------------------------------------------------------------------------------------------
# The run's history, read once by the driver.

def _history(catalog: Catalog, run_id: str, bound: list[Any], prompt_ids: list[str] | None = None) -> ShardHistory:
    """Generation metadata of the run (or of these prompts), the recipe judges' verdicts on them, and the texts
    of the samples still owed a verdict."""
    where = None
    if prompt_ids is not None:
        where = "prompt_id IN (" + ", ".join("'" + p.replace("'", "''") + "'" for p in prompt_ids) + ")"
    gens = catalog.generations(run_id=run_id, where=where, with_text=False)
    rows = gens.to_dicts() if len(gens) else []
    if not rows:
        return ShardHistory()
    verdicts: list[dict[str, Any]] = []
    wanted = {(j.name, j.version) for j in bound}
    if bound:
        vdf = catalog.verdicts([r["generation_id"] for r in rows])
        verdicts = [v for v in (vdf.to_dicts() if len(vdf) else [])
                    if (v["judge"], str(v["judge_version"])) in wanted]
    have: dict[str, set[str]] = {}
    for v in verdicts:
        have.setdefault(v["generation_id"], set()).add(v["judge"])
    names = {j.name for j in bound}
    owed = [r["generation_id"] for r in rows if not names <= have.get(r["generation_id"], set())]
    texts: dict[str, dict[str, Any]] = {}
    if owed:
        texts = {r["generation_id"]: r for r in catalog.generations(run_id=run_id, ids=owed).to_dicts()}
    return ShardHistory(rows, verdicts, texts)


class _Index:
    """The history by prompt: what a shard is handed, and each prompt's pass history in sample order."""

    def __init__(self, history: ShardHistory, names: list[str]) -> None:
        self.names = names
        self.gens: dict[str, list[dict[str, Any]]] = {}
        self.verdicts: dict[str, list[dict[str, Any]]] = {}
        self.texts: dict[str, dict[str, dict[str, Any]]] = {}
        self.update(history)

    def update(self, history: ShardHistory, prompt_ids: list[str] | None = None) -> None:
        for p in prompt_ids or []:
            self.gens.pop(p, None)
            self.verdicts.pop(p, None)
            self.texts.pop(p, None)
        prompt_of = {}
        for g in history.generations:
            self.gens.setdefault(g["prompt_id"], []).append(g)
            prompt_of[g["generation_id"]] = g["prompt_id"]
        for v in history.verdicts:
            self.verdicts.setdefault(prompt_of[v["generation_id"]], []).append(v)
        for gid, t in history.texts.items():
            self.texts.setdefault(t["prompt_id"], {})[gid] = t

    def count(self, prompt_id: str) -> int:
        return len(self.gens.get(prompt_id, ()))

    def of(self, prompt_ids: list[str]) -> ShardHistory:
        return ShardHistory([g for p in prompt_ids for g in self.gens.get(p, ())],
                            [v for p in prompt_ids for v in self.verdicts.get(p, ())],
                            {gid: t for p in prompt_ids for gid, t in self.texts.get(p, {}).items()})

    def passes(self, prompt_id: str) -> list[bool]:
        verdict: dict[str, dict[str, bool]] = {}
        for v in self.verdicts.get(prompt_id, ()):
            verdict.setdefault(v["generation_id"], {})[v["judge"]] = bool(v["passed"])
        rows = sorted(self.gens.get(prompt_id, ()), key=lambda g: g["sample_index"])
        return [all(verdict.get(g["generation_id"], {}).get(n, False) for n in self.names) for g in rows]

    def needs_work(self, policy: Policy, prompt_id: str) -> bool:
        """More samples by the policy, or a stored sample still owed a verdict."""
        return bool(self.texts.get(prompt_id)) or policy.plan(self.passes(prompt_id))[0] > 0
