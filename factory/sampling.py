"""Adaptive rejection sampling with a budget, resumable at any point.

For each prompt, sample in rounds until `k` samples pass the judges or the prompt's budget is spent.
What a prompt gets next is a pure function of its own pass/fail history in sample-index order
(`Policy.plan`), and every sample's id and seed come from (prompt, run, index). So a run killed
anywhere and started again asks for exactly the samples an uninterrupted run would have asked for,
and the engine, seeded per sample, makes the same texts.

Per round, every open prompt's request goes to the backend in one `generate` call (optionally split
into chunks of `chunk_prompts`), because batching is what keeps an accelerator busy. Finished samples
are committed as the backend hands them over (its per-result callback), in batches of `commit_every`
or once the oldest waiting one is `commit_interval_s` old, so a request that gives up, a Ctrl-C or a
dead engine costs only what was not finished. Generations are committed first (they are what cost
money), then judged; the verdicts are committed with the chunk's prompt stats as its leases are given
up (one transaction). A sample without a verdict (killed between the two commits) is judged again on
resume, from its stored text: judges are pure, so nothing is generated twice.

Several processes may work on one run: before each call, a process leases the chunk's prompts in the
catalog and samples only those it got, rereading any another process sampled meanwhile. When all
that is left is leased to others, it stops and says so. The backend is opened only for a chunk with
work, so a rerun of a finished recipe never loads the model.
"""
from __future__ import annotations

import inspect
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from typing_extensions import Self

from backends.base import ChatRequest, Completion
from catalogs.errors import UserError
from catalogs.ids import generation_id as make_generation_id
from catalogs.ids import sample_seed
from catalogs.progress import RunProgress
from catalogs.records import Sample, sample_from_row
from catalogs.split import Markers, split_reasoning
from factory.templates import Rendered

if TYPE_CHECKING:
    import polars as pl

    from catalogs.store import PromptClaim

log = logging.getLogger("factory")


class SamplingStore(Protocol):
    """What the sampling loop needs from a catalog, and all it may use: the DuckDB `Catalog` in one process, the
    Ray worker's `ShardCatalog` (a shard's history in memory, writes to Parquet staging) in a worker. The type
    checker holds both to it, so a stand-in that lacks a method, or hides one behind an attribute, fails in CI."""

    # reads
    def generations(self, run_id: str | None = None, where: str | None = None, *, with_text: bool = True,
                    ids: Sequence[str] | None = None) -> pl.DataFrame: ...

    def verdicts(self, generation_ids: list[str] | None = None) -> pl.DataFrame: ...

    # leases
    def claim_prompts(self, run_id: str, prompt_ids: Sequence[str], ttl_s: float = ...) -> PromptClaim: ...

    def renew_leases(self, run_id: str, ttl_s: float = ...) -> None: ...

    def release_prompts(self, run_id: str, prompt_ids: Sequence[str] | None = None,
                        stats: Sequence[dict[str, Any]] = ..., verdicts: Sequence[dict[str, Any]] = ...) -> None: ...

    # writes
    def add_generations(self, rows: Sequence[dict[str, Any]]) -> int: ...

    def add_verdicts(self, rows: Sequence[dict[str, Any]]) -> int: ...

    def set_prompt_stats(self, rows: Sequence[dict[str, Any]]) -> None: ...

    # one attach for a run of quick calls; the file given back around the model's calls
    def held(self) -> AbstractContextManager[None]: ...

    def released(self) -> AbstractContextManager[None]: ...


class GenerationStopped(UserError, RuntimeError):
    """The run stopped early (backend kept failing). What was done is committed; rerun to resume."""

    def __init__(self, message: str, summary: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.summary = summary or {}


# ---------------------------------------------------------------------------------------------------
# The policy: how many samples a prompt gets next, from its history alone.

@dataclass(frozen=True)
class Policy:
    k: int
    round_size: int
    max_samples: int
    retry_samples: int
    max_round_size: int

    def plan(self, passes: list[bool]) -> tuple[int, str]:
        """(samples to ask for next, status). 0 samples means the prompt is finished with that status:
        'solved' (k passed), 'unsolved' (nothing passed after the first round and the retry), or
        'open' (budget spent with some but fewer than k passing; a bigger budget continues it)."""
        n, a = len(passes), sum(passes)
        if a >= self.k:
            return 0, "solved"
        if n < self.round_size:
            return self.round_size - n, "open"
        cap = self.max_samples
        if not any(passes[: self.round_size]):
            # Zero pass rate after the first round: one bounded retry at a higher budget.
            if self.retry_samples <= 0:
                return 0, "unsolved"
            retry_end = self.round_size + self.retry_samples
            if n < retry_end:
                return retry_end - n, "open"
            if a == 0:
                return 0, "unsolved"
            cap = self.max_samples + self.retry_samples
        if n >= cap:
            return 0, "open"
        # Size the next round from the observed pass rate: expected samples to reach k.
        want = math.ceil((self.k - a) * n / a)
        return max(1, min(want, self.max_round_size, cap - n)), "open"

    def rounds(self, passes: list[bool]) -> int:
        """How many rounds an uninterrupted run takes to make this history (replays the policy)."""
        used = rounds = 0
        while used < len(passes):
            m, _ = self.plan(passes[:used])
            if m == 0:
                break
            used += m
            rounds += 1
        return rounds


# ---------------------------------------------------------------------------------------------------
# Judges: any callable sample -> verdict-like (bool, number, mapping or object with `passed`).



@dataclass
class BoundJudge:
    name: str
    fn: Callable[..., Any]
    params: dict[str, Any] = field(default_factory=dict)
    # The version verdicts are stored (and cached) under; registry judges use the key `r1f judge` uses (code
    # version plus a hash of the params), so a verdict made while sampling is not made again there.
    fixed_version: str | None = None

    @property
    def version(self) -> str:
        if self.fixed_version is not None:
            return self.fixed_version
        return str(getattr(self.fn, "version", None) or getattr(self.fn, "judge_version", None) or "0")

    def __call__(self, sample: Any) -> dict[str, Any]:
        raw = self.fn(sample, **self.params) if self.params else self.fn(sample)
        verdict = normalise_verdict(raw, self.name, self.version, sample.generation_id)
        if self.fixed_version is not None:
            verdict["judge_version"] = self.fixed_version
        return verdict


def _get(obj: Any, key: str, default: Any = None) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key, default)
    return getattr(obj, key, default)


def normalise_verdict(raw: Any, judge: str, version: str, gid: str) -> dict[str, Any]:
    details: dict[str, Any]
    if isinstance(raw, bool):
        passed, score, reason, details = raw, float(raw), None, {}
    elif isinstance(raw, (int, float)):
        passed, score, reason, details = raw > 0, float(raw), None, {}
    else:
        passed = _get(raw, "passed")
        if passed is None:
            raise TypeError(f"judge {judge!r} returned {type(raw).__name__} without `passed`; return a bool, a "
                            "number, or a verdict with `passed` (and optionally score, reason, details)")
        score = _get(raw, "score")
        passed = bool(passed)
        score = float(passed) if score is None else float(score)
        reason, details = _get(raw, "reason"), _get(raw, "details") or {}
        version = str(_get(raw, "judge_version") or _get(raw, "version") or version)
    return {"generation_id": gid, "judge": judge, "judge_version": version, "score": score, "passed": passed,
            "reason": reason, "details": details}


# ---------------------------------------------------------------------------------------------------
# Stopping cleanly on Ctrl-C / SIGTERM.

class StopGuard:
    """SIGINT and SIGTERM become KeyboardInterrupt, except inside `critical()` (a catalog commit), where
    the stop waits until the commit is done."""

    def __init__(self) -> None:
        self.requested = False
        self._critical = False
        self._old: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Any) -> None:
        self.requested = True
        if not self._critical:
            raise KeyboardInterrupt(f"signal {signum}")

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    @contextmanager
    def critical(self) -> Iterator[None]:
        self._critical = True
        try:
            yield
        finally:
            self._critical = False
        if self.requested:
            raise KeyboardInterrupt("stop requested")


# ---------------------------------------------------------------------------------------------------
# The loop.

@dataclass
class PromptState:
    prompt_id: str
    row: dict[str, Any]
    rendered: Rendered
    # sample_index -> passed (all judges), for samples whose verdicts are known
    passes: dict[int, bool] = field(default_factory=dict)
    tokens: int = 0
    status: str = "open"
    # True once another process may have sampled it since we last read it (we do not hold its lease): its
    # history here may be short, so its stats are not written from it.
    stale: bool = False
    # (samples, tokens) as this process last wrote the prompt's stats: the closing write skips what it holds.
    stats_written: tuple[int, int] | None = None

    def history(self) -> list[bool]:
        return [self.passes[i] for i in sorted(self.passes)]

    def next_indices(self, m: int) -> list[int]:
        out: list[int] = []
        i = 0
        while len(out) < m:
            if i not in self.passes:
                out.append(i)
            i += 1
        return out


@dataclass
class SamplingJob:
    run_id: str
    prompts: list[dict[str, Any]]
    render: Callable[[dict[str, Any]], Rendered]
    markers: Markers
    policy: Policy
    temperature: float
    top_p: float
    max_tokens: int
    stop: list[str] | None
    judges: list[BoundJudge]
    chunk_prompts: int | None = None
    # Handed to the model's chat template with every request (`backends.render`), as the length check used them.
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    resume_hint: str = "run the same command again to resume"
    # Give up after this many consecutive backend calls that produced nothing.
    max_failed_calls: int = 1
    # Commit finished samples in batches of this many, or once the oldest waiting one is this old: a kill -9
    # loses at most one batch, and a batch is one shard (thousands of one-sample shards would slow reads).
    commit_every: int = 1000
    commit_interval_s: float = 30.0
    lease_ttl_s: float = 3600.0
    # Called once, with the rows of the prompts that have work, before the first call (checks that need a
    # tokenizer, registering the run): a rerun with nothing to do pays for none of it.
    before_work: Callable[[list[dict[str, Any]]], None] | None = None


def _sample_for(state: PromptState, gen: dict[str, Any]) -> Sample:
    """What a judge sees: the prompt with its reference answer and tests, and the split generation."""
    row = state.row
    return sample_from_row({**row, **gen, "prompt_id": state.prompt_id, "reference": row.get("answer"),
                            "answer": gen.get("answer")})


def _judge_all(job: SamplingJob, items: list[tuple[PromptState, dict[str, Any]]]) -> tuple[list[dict], list[bool]]:
    verdicts: list[dict[str, Any]] = []
    passed: list[bool] = []
    for state, gen in items:
        ok = True
        sample = _sample_for(state, gen)
        for judge in job.judges:
            v = judge(sample)
            verdicts.append(v)
            ok = ok and v["passed"]
        passed.append(ok)
    return verdicts, passed


class _LazyBackend:
    """The backend, opened on the first call that has work (a model load costs seconds to minutes)."""

    def __init__(self, backend: Any) -> None:
        opener = None if hasattr(backend, "generate") else backend
        self._backend: Any
        self._open: Callable[[], Any] | None
        self._backend, self._open = (None, opener) if opener is not None else (backend, None)

    @property
    def ready(self) -> bool:
        return self._backend is not None

    def get(self) -> Any:
        if self._backend is None:
            assert self._open is not None
            log.info("opening the backend (there is work to do)")
            self._backend = self._open()
        return self._backend


def run_sampling(job: SamplingJob, backend: Any, catalog: SamplingStore, progress: RunProgress | None = None) -> dict[str, Any]:
    """Sample until every prompt is solved, unsolved or out of budget. Returns a summary dict.

    `backend` is a backend, or a function without arguments that opens one; it is called only once a chunk has
    work. Stops cleanly on Ctrl-C/SIGTERM (summary status 'interrupted'); raises GenerationStopped when the
    backend keeps failing; returns status 'left_to_others' when what is left is leased to another process.
    Whatever happens, every finished sample is committed.
    """
    t0 = time.monotonic()
    states = {p["prompt_id"]: PromptState(p["prompt_id"], p, job.render(p)) for p in job.prompts}
    counters: dict[str, Any] = {"generated": 0, "tokens": 0, "tokens_in": 0, "calls": 0, "engine_s": 0.0}

    # What already exists for this run: resume from it.
    existing = catalog.generations(run_id=job.run_id, with_text=False)  # texts only where judging is owed
    existing_rows = [r for r in existing.to_dicts() if r["prompt_id"] in states] if len(existing) else []
    if existing_rows:
        _restore(job, catalog, states, existing_rows)
        log.info("resuming run %s: %d samples already in the catalog", job.run_id, len(existing_rows))

    total_accepted = lambda: sum(sum(s.passes.values()) for s in states.values())
    total_samples = lambda: sum(len(s.passes) for s in states.values())

    def finished() -> int:
        return sum(1 for s in states.values() if job.policy.plan(s.history())[0] == 0)

    lazy = _LazyBackend(backend)
    status = "complete"
    message = None
    guard = StopGuard()
    failed_calls = 0
    rounds = 0
    held: dict[str, str] = {}  # prompt -> who holds it, for the open prompts left to another process
    prepared = False  # job.before_work has run
    released = False  # the loop ended normally: every lease it took was given up by `_let_go`
    # The catalog's quick calls (leases, commits, verdicts, stats) share one attach, as `Catalog.held` keeps it;
    # the file is given back around everything that may take long (the model's load and calls, `before_work`).
    with catalog.held(), guard:
        try:
            if progress:
                progress.update(prompts_done=finished(), accepted=total_accepted(), generated=total_samples())
            while True:
                plan = []
                for s in states.values():
                    m, st = job.policy.plan(s.history())
                    s.status = st
                    if m:
                        plan.append(s)
                if not plan:
                    break
                size = job.chunk_prompts or len(plan)
                worked = False
                held = {}
                for start in range(0, len(plan), size):
                    chunk, claimed = _claim(job, catalog, plan[start: start + size], held)
                    verdicts: list[dict[str, Any]] = []  # the chunk's, committed as its leases go (`_let_go`)
                    try:
                        if chunk:
                            if job.before_work is not None and not prepared:
                                with catalog.released():
                                    job.before_work([s.row for s in plan])
                                prepared = True
                            if not worked:
                                rounds += 1
                                log.info("round %d: %d prompts, %d samples", rounds, len(plan),
                                         sum(job.policy.plan(s.history())[0] for s in plan))
                            worked = True
                            added = _run_chunk(job, lazy, catalog, chunk, counters, guard, verdicts)
                            failed_calls = 0 if added else failed_calls + 1
                            if failed_calls >= job.max_failed_calls and not added:
                                raise GenerationStopped(
                                    f"the backend returned no usable completions for {failed_calls} call(s) in a "
                                    f"row; everything finished so far is committed; {job.resume_hint}")
                    finally:
                        _let_go(job, catalog, claimed, guard, verdicts)
                    if progress:
                        progress.update(prompts_done=finished(), accepted=total_accepted(),
                                        generated=total_samples(), new_tokens=counters.pop("new_tokens", 0),
                                        note=f"round {rounds}")
                if not worked and held:
                    # Everything still open is leased to other processes: theirs to sample, not ours.
                    status = "left_to_others"
                    holders = sorted(set(held.values()))
                    message = (f"{len(held)} prompt(s) still open are being sampled by another process right now "
                               f"({'; '.join(holders[:3])}{' and others' if len(holders) > 3 else ''}); they "
                               f"were left to it, so no sample is paid for twice. This process generated "
                               f"{counters['generated']} sample(s). When that process has finished, "
                               f"{job.resume_hint.replace('to resume', 'to check that nothing is left')}")
                    break
            released = True
        except KeyboardInterrupt:
            status = "interrupted"
            message = (f"interrupted: everything finished so far is committed to the catalog "
                       f"({counters['generated']} sample(s) by this run); {job.resume_hint}")
        except GenerationStopped as exc:
            status, message = "backend_failed", str(exc)
        finally:
            try:
                # Finished prompts' histories are final, whoever made them; open ones were written under lease.
                _write_stats(job, catalog, [s for s in states.values()
                                            if not s.stale and job.policy.plan(s.history())[0] == 0
                                            and s.stats_written != (len(s.passes), s.tokens)])
            except Exception:
                log.exception("could not write prompt stats")
            try:
                if not released:  # after a normal end there is no lease left to give up: no write for nothing
                    catalog.release_prompts(job.run_id)
            except Exception:
                log.exception("could not release this process's leases (they lapse when it exits)")

    elapsed = time.monotonic() - t0
    statuses = [job.policy.plan(s.history())[1] for s in states.values()]
    accepted = total_accepted()
    samples = total_samples()
    summary = {
        "status": status, "run_id": job.run_id, "prompts": len(states),
        "solved": statuses.count("solved"), "unsolved": statuses.count("unsolved"),
        "open": statuses.count("open"), "samples_generated": counters["generated"], "samples_total": samples,
        "accepted_total": accepted, "accept_rate": accepted / samples if samples else 0.0,
        "tokens_generated": counters["tokens"], "tokens_in": counters["tokens_in"],
        "engine_s": round(counters["engine_s"], 3),
        "tokens_per_s": counters["tokens"] / elapsed if elapsed > 0 else 0.0,
        "tokens_per_accepted": (sum(s.tokens for s in states.values()) / accepted) if accepted else None,
        "rounds": rounds, "backend_calls": counters["calls"], "elapsed_s": round(elapsed, 3),
    }
    if held and status == "left_to_others":
        summary["left_to_others"] = len(held)
    if message:
        summary["message"] = message
        if progress:
            progress.message(message)
        else:
            log.warning(message)
        if status == "backend_failed":
            raise GenerationStopped(message, summary)
    return summary


def _claim(job: SamplingJob, catalog: SamplingStore, candidates: list[PromptState], held: dict[str, str]
           ) -> tuple[list[tuple[PromptState, list[int]]], list[PromptState]]:
    """Lease the candidates that no other process holds; reread those another process sampled meanwhile.
    Returns (the chunk to ask for: prompts with the sample indices they need now, the prompts leased)."""
    claim = catalog.claim_prompts(job.run_id, [s.prompt_id for s in candidates], job.lease_ttl_s)
    by_id = {s.prompt_id: s for s in candidates}
    for pid_, who in claim.held.items():
        held[pid_] = who
        by_id[pid_].stale = True
    claimed = [by_id[p] for p in claim.claimed]
    moved = [s for s in claimed if claim.stored.get(s.prompt_id, 0) != len(s.passes)]
    if moved:
        log.info("%d prompt(s) were sampled by another process meanwhile; reading them again", len(moved))
        _refresh(job, catalog, moved)
    chunk = []
    for s in claimed:
        s.stale = False
        m, s.status = job.policy.plan(s.history())
        if m:
            chunk.append((s, s.next_indices(m)))
    return chunk, claimed


def _let_go(job: SamplingJob, catalog: SamplingStore, claimed: list[PromptState], guard: StopGuard,
            verdicts: Sequence[dict[str, Any]] = ()) -> None:
    """Write the chunk's verdicts and the stats of leased prompts while we still hold them, and give the leases up,
    in one transaction."""
    if not claimed:
        return
    ids = [s.prompt_id for s in claimed]
    committed = False
    try:
        with guard.critical():
            catalog.release_prompts(job.run_id, ids, stats=_stats_rows(job, claimed), verdicts=verdicts)
            committed = True
            for s in claimed:
                s.stats_written = (len(s.passes), s.tokens)
    finally:
        if not committed:  # the stats failed to commit: the leases go all the same, as they always have
            catalog.release_prompts(job.run_id, ids)
        for s in claimed:  # from now on another process may sample them
            # Verdicts that failed to commit are in the histories here but not in the catalog: no stats from them.
            s.stale = job.policy.plan(s.history())[0] > 0 or (not committed and bool(verdicts))


def _refresh(job: SamplingJob, catalog: SamplingStore, moved: list[PromptState]) -> None:
    """Rebuild these prompts' histories from the catalog."""
    ids = ", ".join("'" + s.prompt_id.replace("'", "''") + "'" for s in moved)
    rows = catalog.generations(run_id=job.run_id, where=f"prompt_id IN ({ids})", with_text=False)
    for s in moved:
        s.passes.clear()
        s.tokens = 0
    if len(rows):
        _restore(job, catalog, {s.prompt_id: s for s in moved}, rows.to_dicts())


def _restore(job: SamplingJob, catalog: SamplingStore, states: dict[str, PromptState], rows: list[dict[str, Any]]) -> None:
    """Rebuild each prompt's pass history from the catalog, judging samples that lack a verdict."""
    by_id = {r["generation_id"]: r for r in rows}
    known: dict[str, dict[str, bool]] = {gid: {} for gid in by_id}
    if job.judges:
        vdf = catalog.verdicts(list(by_id))
        wanted = {(j.name, j.version) for j in job.judges}
        for v in vdf.to_dicts() if len(vdf) else []:
            if (v["judge"], str(v["judge_version"])) in wanted and v["generation_id"] in known:
                known[v["generation_id"]][v["judge"]] = bool(v["passed"])
    names = [j.name for j in job.judges]
    owed = [gid for gid in by_id if any(n not in known[gid] for n in names)]
    if owed:  # read the texts of these samples only
        with_text = {r["generation_id"]: r for r in catalog.generations(run_id=job.run_id, ids=owed).to_dicts()}
        missing = [(states[by_id[gid]["prompt_id"]], with_text[gid]) for gid in owed]
        log.info("judging %d stored samples that have no verdict yet", len(missing))
        verdicts, _ = _judge_all(job, missing)
        catalog.add_verdicts(verdicts)
        for v in verdicts:
            known[v["generation_id"]][v["judge"]] = bool(v["passed"])
    for gid, r in by_id.items():
        s = states[r["prompt_id"]]
        s.passes[int(r["sample_index"])] = all(known[gid].get(n, False) for n in names)
        s.tokens += int(r.get("completion_tokens") or 0)


class _Committer:
    """Buffers finished samples and commits them in batches: by count, by age, and whatever is left at the end."""

    def __init__(self, job: SamplingJob, catalog: SamplingStore, guard: StopGuard, counters: dict[str, Any]) -> None:
        self.job, self.catalog, self.guard, self.counters = job, catalog, guard, counters
        self.pending: list[tuple[PromptState, dict[str, Any]]] = []
        self.committed: list[tuple[PromptState, dict[str, Any]]] = []
        self.oldest: float | None = None
        self.renewed = time.monotonic()
        self.lock = threading.Lock()  # the callback may run on the backend's thread

    def add(self, state: PromptState, gen: dict[str, Any], *, batch_due: bool = True) -> None:
        with self.lock:
            self.pending.append((state, gen))
            self.oldest = self.oldest or time.monotonic()
            due = batch_due and (len(self.pending) >= self.job.commit_every
                                 or time.monotonic() - self.oldest >= self.job.commit_interval_s)
        if due:
            self.flush()

    def flush(self) -> None:
        with self.lock:
            batch, self.pending, self.oldest = self.pending, [], None
            if not batch:
                return
            with self.guard.critical():  # a stop waits for the commit, and for its bookkeeping
                self.catalog.add_generations([g for _, g in batch])
                self.committed.extend(batch)
                tokens = sum(int(g["completion_tokens"] or 0) for _, g in batch)
                self.counters["generated"] += len(batch)
                self.counters["tokens"] += tokens
                self.counters["tokens_in"] += sum(int(g["prompt_tokens"] or 0) for _, g in batch)
                self.counters["new_tokens"] = self.counters.get("new_tokens", 0) + tokens
            log.info("committed %d generations", len(batch))
            if time.monotonic() - self.renewed > self.job.lease_ttl_s / 4:
                self.catalog.renew_leases(self.job.run_id, self.job.lease_ttl_s)
                self.renewed = time.monotonic()


def _accepts_on_result(backend: Any) -> bool:
    try:
        params = inspect.signature(backend.generate).parameters
    except (TypeError, ValueError):
        return False
    return "on_result" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _run_chunk(job: SamplingJob, lazy: _LazyBackend, catalog: SamplingStore, chunk: list[tuple[PromptState, list[int]]],
               counters: dict[str, Any], guard: StopGuard, verdicts: list[dict[str, Any]]) -> int:
    """Ask the backend for the chunk's samples, commit them as they come and judge them. The verdicts go to
    `verdicts`, for the caller to commit with the chunk's leases (`_let_go`)."""
    # One request per sample, not one per prompt with n: a backend reports a request as a whole, so a prompt's
    # samples would stand or fall together, and a sample served while its sibling failed would be paid twice.
    # Both backends send a seeded sample as a request of its own anyway, so batching is unchanged.
    requests, owners = [], []
    for state, indices in chunk:
        extra: dict[str, Any] = {"raw_prompt": state.rendered.raw_prompt} if state.rendered.raw_prompt is not None else {}
        if job.chat_template_kwargs:
            extra["chat_template_kwargs"] = job.chat_template_kwargs
        for idx in indices:
            seed = sample_seed(make_generation_id(state.prompt_id, job.run_id, idx))
            requests.append(ChatRequest(
                messages=state.rendered.messages, n=1, temperature=job.temperature, top_p=job.top_p,
                max_tokens=job.max_tokens, stop=job.stop, key=state.prompt_id, seeds=[seed], extra=extra))
            owners.append((state, idx, seed))
    committer = _Committer(job, catalog, guard, counters)
    delivered: set[int] = set()
    ours: list[BaseException] = []  # an error raised by our callback, not by the backend
    returned = False  # the call is over: what it returned is committed as one batch (one shard)

    def on_result(i: int, completions: list[Completion]) -> None:
        if i in delivered or not 0 <= i < len(owners) or not completions:
            return
        delivered.add(i)
        state, idx, seed = owners[i]
        try:
            gen = _generation_row(job, state, idx, seed, completions[0])
            if gen is not None:
                committer.add(state, gen, batch_due=not returned)
        except BaseException as exc:
            ours.append(exc)
            raise

    if lazy.ready:
        backend = lazy.get()
    else:
        with catalog.released():  # a model load: seconds to minutes
            backend = lazy.get()
    counters["calls"] += 1
    failure: Exception | None = None
    started = time.monotonic()  # engine seconds: the backend's wall time, whatever it returns
    try:
        with catalog.released():  # the model's call may take long; commits due meanwhile open the file as usual
            if _accepts_on_result(backend):
                results = backend.generate(requests, on_result=on_result)
            else:
                results = backend.generate(requests)
        if len(results) != len(requests):
            raise GenerationStopped(f"the backend returned {len(results)} results for {len(requests)} requests")
        returned = True
        for i, completions in enumerate(results):
            on_result(i, completions)
    except Exception as exc:
        if ours and (exc is ours[0] or exc.__context__ is ours[0]):
            raise  # our own bug or a catalog error, not the backend's
        failure = exc
    finally:
        counters["engine_s"] += time.monotonic() - started
        committer.flush()  # what finished is kept, whatever happened to the rest (a Ctrl-C included)
    committed = committer.committed
    try:
        _judge_and_record(job, committed, verdicts)
    except Exception:
        if failure is None:
            raise
        log.exception("judging the samples committed before the backend failed; a rerun judges them")
    if failure is not None:
        raise GenerationStopped(_failure_message(job, failure, chunk, committed, counters)) from failure
    return len(committed)


def _generation_row(job: SamplingJob, state: PromptState, idx: int, seed: int, comp: Any) -> dict[str, Any] | None:
    if not isinstance(comp, Completion) and not hasattr(comp, "text"):
        return None
    if comp.finish_reason == "error":  # a per-request failure: not a sample; asked again later
        return None
    reasoning, answer = split_reasoning(comp.text or "", job.markers, comp.reasoning)
    return {
        "generation_id": make_generation_id(state.prompt_id, job.run_id, idx),
        "prompt_id": state.prompt_id, "run_id": job.run_id, "sample_index": idx, "seed": seed,
        "text": comp.text or "", "reasoning": reasoning, "answer": answer,
        "finish_reason": comp.finish_reason, "prompt_tokens": comp.prompt_tokens,
        "completion_tokens": comp.completion_tokens, "latency_s": comp.latency_s,
    }


def _judge_and_record(job: SamplingJob, items: list[tuple[PromptState, dict[str, Any]]],
                      verdicts: list[dict[str, Any]]) -> None:
    """Judge committed samples into each prompt's history; their verdicts go to `verdicts`, to be committed."""
    if not items:
        return
    if job.judges:
        made, passed = _judge_all(job, items)
        verdicts.extend(made)
    else:
        passed = [True] * len(items)
    for (state, gen), ok in zip(items, passed):
        state.passes[gen["sample_index"]] = ok
        state.tokens += int(gen["completion_tokens"] or 0)


def _failure_message(job: SamplingJob, exc: Exception, chunk: list[tuple[PromptState, list[int]]],
                     committed: list[tuple[PromptState, dict[str, Any]]], counters: dict[str, Any]) -> str:
    """Exactly what was kept and what a rerun will ask for."""
    asked = sum(len(ix) for _, ix in chunk)
    kept = len(committed)
    got = {s.prompt_id for s, _ in committed}
    per_prompt: dict[str, int] = {}
    for s, _ in committed:
        per_prompt[s.prompt_id] = per_prompt.get(s.prompt_id, 0) + 1
    short = sum(1 for s, ix in chunk if per_prompt.get(s.prompt_id, 0) < len(ix))
    return (f"the backend failed: {type(exc).__name__}: {str(exc).rstrip('.')}. Committed from this call: {kept} of the {asked} "
            f"samples asked for ({len(got)} prompt(s)); {counters['generated']} committed by this run in all. "
            f"Not generated: {asked - kept} sample(s) of {short} prompt(s); a rerun asks for exactly those, and "
            f"none of the {kept} again: fix the cause and {job.resume_hint}")


def stats_row(policy: Policy, run_id: str, prompt_id: str, hist: list[bool], tokens: int) -> dict[str, Any]:
    """A prompt's `prompt_stats` row from its pass history (in sample order) and its completion tokens."""
    _, status = policy.plan(hist)
    return {"prompt_id": prompt_id, "run_id": run_id, "samples": len(hist), "accepted": sum(hist),
            "pass_rate": sum(hist) / len(hist) if hist else 0.0, "status": status, "rounds": policy.rounds(hist),
            "tokens": tokens}


def _stats_rows(job: SamplingJob, states: list[PromptState]) -> list[dict[str, Any]]:
    return [stats_row(job.policy, job.run_id, s.prompt_id, hist, s.tokens) for s in states if (hist := s.history())]


def _write_stats(job: SamplingJob, catalog: SamplingStore, states: list[PromptState]) -> None:
    catalog.set_prompt_stats(_stats_rows(job, states))
    for s in states:
        s.stats_written = (len(s.passes), s.tokens)
