"""Adaptive rejection sampling with a budget, resumable at any point.

For each prompt, sample in rounds until `k` samples pass the judges or the prompt's budget is spent.
What a prompt gets next is a pure function of its own pass/fail history in sample-index order
(`Policy.plan`), and every sample's id and seed come from (prompt, run, index). So a run killed
anywhere and started again asks for exactly the samples an uninterrupted run would have asked for,
and the engine, seeded per sample, makes the same texts.

Per round, every open prompt's request goes to the backend in one `generate` call (optionally split
into chunks of `chunk_prompts`), because batching is what keeps an accelerator busy. After each call
the generations are committed to the catalog first (they are what cost money), then judged, then the
verdicts are committed. A sample without a verdict (killed between the two commits) is judged again
on resume, from its stored text: judges are pure, so nothing is generated twice.
"""
from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from typing_extensions import Self

from backends.base import ChatRequest, Completion
from catalogs.errors import UserError
from catalogs.ids import generation_id as make_generation_id
from catalogs.ids import sample_seed
from catalogs.progress import RunProgress
from catalogs.records import Sample
from catalogs.split import Markers, split_reasoning
from factory.templates import Rendered

log = logging.getLogger("factory")


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

    def history(self) -> list[bool]:
        return [self.passes[i] for i in sorted(self.passes)]

    def next_indices(self, m: int) -> list[int]:
        out, i = [], 0
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
    resume_hint: str = "run the same command again to resume"
    # Give up after this many consecutive backend calls that produced nothing.
    max_failed_calls: int = 1


def _sample_for(state: PromptState, gen: dict[str, Any]) -> Sample:
    """What a judge sees: the prompt with its reference answer and tests, and the split generation."""
    row = state.row
    return Sample(
        generation_id=gen["generation_id"], prompt_id=state.prompt_id, problem=row.get("problem") or "",
        reference=row.get("answer"), tests=row.get("tests"), domain=row.get("domain") or "",
        language=row.get("language") or "en", kind=row.get("kind") or "reasoning", text=gen.get("text") or "",
        reasoning=gen.get("reasoning") or "", answer=gen.get("answer") or "", finish_reason=gen.get("finish_reason"),
    )


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


def run_sampling(job: SamplingJob, backend: Any, catalog: Any, progress: RunProgress | None = None) -> dict[str, Any]:
    """Sample until every prompt is solved, unsolved or out of budget. Returns a summary dict.

    Stops cleanly on Ctrl-C/SIGTERM (summary status 'interrupted'); raises GenerationStopped when the
    backend keeps failing. Either way everything finished is committed.
    """
    t0 = time.monotonic()
    states = {p["prompt_id"]: PromptState(p["prompt_id"], p, job.render(p)) for p in job.prompts}
    counters = {"generated": 0, "tokens": 0, "calls": 0}

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

    status = "complete"
    message = None
    guard = StopGuard()
    failed_calls = 0
    rounds = 0
    with guard:
        try:
            if progress:
                progress.update(prompts_done=finished(), accepted=total_accepted(), generated=total_samples())
            while True:
                plan = []
                for s in states.values():
                    m, st = job.policy.plan(s.history())
                    s.status = st
                    if m:
                        plan.append((s, s.next_indices(m)))
                if not plan:
                    break
                rounds += 1
                size = job.chunk_prompts or len(plan)
                log.info("round %d: %d prompts, %d samples", rounds, len(plan), sum(len(ix) for _, ix in plan))
                for start in range(0, len(plan), size):
                    chunk = plan[start: start + size]
                    added = _run_chunk(job, backend, catalog, chunk, counters, guard)
                    failed_calls = 0 if added else failed_calls + 1
                    if failed_calls >= job.max_failed_calls and not added:
                        raise GenerationStopped(
                            f"the backend returned no usable completions for {failed_calls} call(s) in a row; "
                            f"everything finished so far is committed; {job.resume_hint}")
                    if progress:
                        progress.update(prompts_done=finished(), accepted=total_accepted(),
                                        generated=total_samples(), new_tokens=counters.pop("new_tokens", 0),
                                        note=f"round {rounds}")
                _write_stats(job, catalog, states, guard)
        except KeyboardInterrupt:
            status = "interrupted"
            message = (f"interrupted: everything finished so far is committed to the catalog; {job.resume_hint}")
        except GenerationStopped as exc:
            status, message = "backend_failed", str(exc)
        except Exception as exc:
            if counters.get("in_backend"):
                status = "backend_failed"
                message = (f"the backend failed: {type(exc).__name__}: {exc}. Everything finished so far is "
                           f"committed; fix the cause and {job.resume_hint}")
            else:
                raise
        finally:
            try:
                _write_stats(job, catalog, states, None)
            except Exception:
                log.exception("could not write prompt stats")

    elapsed = time.monotonic() - t0
    statuses = [job.policy.plan(s.history())[1] for s in states.values()]
    accepted = total_accepted()
    samples = total_samples()
    summary = {
        "status": status, "run_id": job.run_id, "prompts": len(states),
        "solved": statuses.count("solved"), "unsolved": statuses.count("unsolved"),
        "open": statuses.count("open"), "samples_generated": counters["generated"], "samples_total": samples,
        "accepted_total": accepted, "accept_rate": accepted / samples if samples else 0.0,
        "tokens_generated": counters["tokens"],
        "tokens_per_s": counters["tokens"] / elapsed if elapsed > 0 else 0.0,
        "tokens_per_accepted": (sum(s.tokens for s in states.values()) / accepted) if accepted else None,
        "rounds": rounds, "backend_calls": counters["calls"], "elapsed_s": round(elapsed, 3),
    }
    if message:
        summary["message"] = message
        if progress:
            progress.message(message)
        else:
            log.warning(message)
        if status == "backend_failed":
            raise GenerationStopped(message, summary)
    return summary


def _restore(job: SamplingJob, catalog: Any, states: dict[str, PromptState], rows: list[dict[str, Any]]) -> None:
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


def _run_chunk(job: SamplingJob, backend: Any, catalog: Any, chunk: list[tuple[PromptState, list[int]]],
               counters: dict[str, Any], guard: StopGuard) -> int:
    requests = []
    for state, indices in chunk:
        gids = [make_generation_id(state.prompt_id, job.run_id, i) for i in indices]
        extra = {"raw_prompt": state.rendered.raw_prompt} if state.rendered.raw_prompt is not None else {}
        requests.append(ChatRequest(
            messages=state.rendered.messages, n=len(indices), temperature=job.temperature, top_p=job.top_p,
            max_tokens=job.max_tokens, stop=job.stop, key=state.prompt_id, seeds=[sample_seed(g) for g in gids],
            extra=extra))
    counters["calls"] += 1
    counters["in_backend"] = True
    results = backend.generate(requests)
    counters["in_backend"] = False
    if len(results) != len(requests):
        raise GenerationStopped(f"the backend returned {len(results)} results for {len(requests)} requests; "
                                f"nothing from this call was committed; {job.resume_hint}")
    gens: list[dict[str, Any]] = []
    owners: list[PromptState] = []
    for (state, indices), req, completions in zip(chunk, requests, results):
        for idx, seed, comp in zip(indices, req.seeds or [], completions):
            if not isinstance(comp, Completion) and not hasattr(comp, "text"):
                continue
            if comp.finish_reason == "error":  # a per-request failure: not a sample; asked again later
                continue
            reasoning, answer = split_reasoning(comp.text or "", job.markers, comp.reasoning)
            gens.append({
                "generation_id": make_generation_id(state.prompt_id, job.run_id, idx),
                "prompt_id": state.prompt_id, "run_id": job.run_id, "sample_index": idx, "seed": seed,
                "text": comp.text or "", "reasoning": reasoning, "answer": answer,
                "finish_reason": comp.finish_reason, "prompt_tokens": comp.prompt_tokens,
                "completion_tokens": comp.completion_tokens, "latency_s": comp.latency_s,
            })
            owners.append(state)
    if not gens:
        return 0
    with guard.critical():
        catalog.add_generations(gens)
    log.info("committed %d generations", len(gens))
    tokens = sum(int(g["completion_tokens"] or 0) for g in gens)
    counters["generated"] += len(gens)
    counters["tokens"] += tokens
    counters["new_tokens"] = counters.get("new_tokens", 0) + tokens
    items = list(zip(owners, gens))
    if job.judges:
        verdicts, passed = _judge_all(job, items)
        with guard.critical():
            catalog.add_verdicts(verdicts)
    else:
        passed = [True] * len(items)
    for (state, gen), ok in zip(items, passed):
        state.passes[gen["sample_index"]] = ok
        state.tokens += int(gen["completion_tokens"] or 0)
    return len(gens)


def _write_stats(job: SamplingJob, catalog: Any, states: dict[str, PromptState], guard: StopGuard | None) -> None:
    rows = []
    for s in states.values():
        hist = s.history()
        if not hist:
            continue
        _, status = job.policy.plan(hist)
        rows.append({"prompt_id": s.prompt_id, "run_id": job.run_id, "samples": len(hist), "accepted": sum(hist),
                     "pass_rate": sum(hist) / len(hist), "status": status, "rounds": job.policy.rounds(hist),
                     "tokens": s.tokens})
    if guard is None:
        catalog.set_prompt_stats(rows)
    else:
        with guard.critical():
            catalog.set_prompt_stats(rows)
