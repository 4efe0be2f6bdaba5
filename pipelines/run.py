"""`r1f run`: plan a pipeline against what the catalog records, then run the stages that need it, in order.

A stage is skipped when the catalog has it done with the same recipe hash and the same inputs; otherwise it runs,
and once a stage runs every later one runs too (it was made from what this one changes). Each stage calls its own
package's function, the one its own command calls, so a stage run here and the same command typed by hand do the
same thing. Every stage is idempotent by content ids, so a run killed anywhere resumes without doing work twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from catalogs.errors import UserError
from catalogs.ids import canonical_json, file_sha256
from catalogs.store import Catalog

from .recipe import (
    ENGINE_KINDS,
    TORCH_KINDS,
    ExportArgs,
    IngestArgs,
    PublishArgs,
    ReportArgs,
    ReviewArgs,
    Stage,
    TorchSettings,
    check_pipeline,
    load_pipeline,
    stage_deps,
)


class StageFailed(UserError):
    """A stage raised: the run stops; its error and the resume command are the message."""


@dataclass
class Step:
    position: int
    name: str
    kind: str
    action: str  # run | skip | outside
    why: str
    recipe_hash: str
    inputs: dict[str, Any]
    inputs_hash: str
    stage: Stage = field(repr=False)
    parsed: Any = field(repr=False)
    lane: str | None = None
    # The later stages made from this one: stale once it runs again (every later one, without lanes).
    dependents: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("stage", "parsed")}


@dataclass
class Context:
    """What a stage's runner gets: the catalog, the pipeline file's folder, and the options that go to stages."""

    catalog: Catalog
    base: Path
    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    say: Callable[[str], None] = lambda _msg: None
    backend: Any = None  # one model client for the stages that sample, instead of one built from each recipe


def _hash(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:16]


def pipeline_name(path: Path, name: str | None) -> str:
    return name or path.stem


def _recipe_hash(stage: Stage, base: Path) -> str:
    """What the stage is told to do: its kind, inline args, release, and its recipe file's bytes."""
    recipe = None
    if stage.recipe:
        from catalogs.recipes import resolve_path

        recipe = file_sha256(resolve_path(stage.recipe, base / "pipeline.yaml"))
    return _hash({"kind": stage.kind, "args": stage.args, "release": stage.release, "recipe": recipe})


def _external_inputs(stage: Stage, parsed: Any, base: Path) -> dict[str, Any]:
    """What a stage reads from outside the catalog: an ingest's local file (by content) or Hub dataset; a reward
    model's pairs file (by content: changed pairs train again; None while the file is missing)."""
    if stage.kind == "reward":
        pairs = parsed.pairs_file()
        return {"pairs": str(pairs), "sha256": file_sha256(pairs) if pairs.is_file() else None}
    if stage.kind != "ingest":
        return {}
    from catalogs.ingest import hub_repo_id

    args: IngestArgs = parsed
    if hub_repo_id(args.source):
        return {"hub": args.source, "revision": args.revision or "main"}
    from catalogs.recipes import resolve_path

    src = resolve_path(args.source, base / "pipeline.yaml")
    if src.is_file():
        return {"file": str(src), "sha256": file_sha256(src)}
    files = sorted(p for p in src.rglob("*") if p.is_file()) if src.is_dir() else []
    return {"folder": str(src), "sha256": _hash([(str(p.relative_to(src)), file_sha256(p)) for p in files])}


def plan(catalog: Catalog | None, path: Path, *, start: str | None = None, until: str | None = None) -> tuple[str, list[Step]]:
    """The pipeline's name and each stage's step: run or skip, and why. Refuses a bad pipeline first."""
    checked = check_pipeline(path)
    names = [s.name for s, _ in checked]
    for opt, value in (("--from", start), ("--until", until)):
        if value is not None and value not in names:
            raise UserError(f"{opt} {value}: {path} has no stage of that name; its stages are: {', '.join(names)}")
    pipe = load_pipeline(path)
    name = pipeline_name(path, pipe.name)
    torch_settings = pipe.torch.model_dump() if pipe.torch else None
    base = path.resolve().parent
    done = catalog.pipeline_stages(name) if catalog is not None else {}  # None: no catalog yet
    lo = names.index(start) if start else 0
    hi = names.index(until) if until else len(names) - 1
    deps = stage_deps([s for s, _ in checked])
    steps: list[Step] = []
    hashes: list[str] = []
    for i, (stage, parsed) in enumerate(checked):
        rhash = _recipe_hash(stage, base)
        inputs = {"after": {names[j]: hashes[j] for j in sorted(deps[i])}, **_external_inputs(stage, parsed, base)}
        if torch_settings and stage.kind in TORCH_KINDS:
            inputs["torch"] = torch_settings
        ihash = _hash(inputs)
        hashes.append(rhash)
        rec = done.get(stage.name)
        running_from = next((names[j] for j in sorted(deps[i]) if steps[j].action == "run"), None)
        if i < lo or i > hi:
            action, why = "outside", f"outside --from {start}" if i < lo else f"outside --until {until}"
        elif i == lo and start:
            action, why = "run", f"--from {start}"
        elif rec is None:
            action, why = "run", "never ran"
        elif running_from is not None:
            action, why = "run", f"after {running_from}, which runs"
        elif rec["status"] != "done":
            action, why = "run", {"running": "unfinished: the last run stopped inside it",
                                  "failed": f"failed last time: {str(rec['error'] or '')[:80]}",
                                  "waiting": "review gate: samples were waiting",
                                  "stale": "stale: an earlier stage ran again after it"}.get(rec["status"],
                                                                                             rec["status"])
        elif rec["recipe_hash"] != rhash:
            action, why = "run", "recipe changed"
        elif rec["inputs_hash"] != ihash:
            action, why = "run", "inputs changed"
        else:
            action, why = "skip", f"done, unchanged (finished {rec['finished_at']:%Y-%m-%d %H:%M:%S})"
        steps.append(Step(i, stage.name, stage.kind, action, why, rhash, inputs, ihash, stage, parsed, stage.lane,
                          [names[k] for k in range(i + 1, len(names)) if i in deps[k]]))
    return name, steps


def run_pipeline(catalog: Catalog, path: Path, *, start: str | None = None, until: str | None = None,
                 engine: str = "local", address: str | None = None, workers: int | None = None,
                 resume: str = "", say: Callable[[str], None] = lambda _msg: None,
                 backend: Any = None) -> dict[str, Any]:
    """Run the stages the plan says run. Returns {pipeline, status (done/waiting), steps, outputs, lanes}; a failed
    stage raises StageFailed after recording its error. `backend`, if given, is the model client of the stages
    that sample (generate, eval), as their own `backend=` parameter takes it (not closed here).

    A lane's stages run in a second process (one per lane), beside the others, where the cores allow it: the
    pipeline's `torch.threads` times the processes fits the machine's cores, the engine is local and no `backend`
    is shared. Elsewhere they run here, in file order, to the same results."""
    path = Path(path)
    name, steps = plan(catalog, path, start=start, until=until)
    resume = resume or f"r1f run {path}"
    todo = [s for s in steps if s.action == "run"]
    result: dict[str, Any] = {"pipeline": name, "status": "done", "steps": [s.as_dict() for s in steps],
                              "outputs": {}, "lanes": {}}
    if not todo:
        say(f"pipeline {name}: nothing to do, every stage is done and unchanged")
        return result
    settings = load_pipeline(path).torch
    if settings is not None:
        set_torch(settings)
    ctx = Context(catalog, path.resolve().parent, engine, address, workers, say, backend)
    run = catalog.start_pipeline_run(name, str(path.resolve()), _hash([s.recipe_hash for s in steps]))
    lanes = list(dict.fromkeys(s.lane for s in todo if s.lane is not None))
    threads = settings.threads if settings is not None else None
    apart = bool(lanes) and engine == "local" and backend is None and threads is not None and \
        threads * (1 + len(lanes)) <= (os.cpu_count() or 1)
    started: dict[str, Lane] = {}
    try:
        for step in todo:
            if apart and step.lane is not None:
                if step.lane not in started:  # every stage it is made from is done: the lane starts
                    started[step.lane] = lane = Lane.start(catalog.root, path, name, run, step.lane,
                                                           [s for s in todo if s.lane == step.lane], say)
                    say(f"lane {step.lane}: {len(lane.names)} stage(s) in a second process ({', '.join(lane.names)})"
                        f"; its log: {lane.log}")
                continue
            say(f"stage {step.position + 1}/{len(steps)} {step.name} ({step.kind}): {step.why}")
            outputs = _run_step(ctx, name, step, run, resume)
            result["outputs"][step.name] = outputs
            if outputs.get("waiting"):  # the gate: no later stage runs here; the lanes started finish first
                say(f"review gate {step.name}: {outputs['waiting']} sample(s) wait for review: run "
                    f"`{outputs['command']}`, then resume with: {resume}")
                result.update(status="waiting", waiting=outputs["waiting"], resume=resume)
                break
        failed: StageFailed | None = None
        for lane_name, lane in started.items():
            done, error = lane.wait()
            result["outputs"].update(done)
            result["lanes"][lane_name] = {"stages": lane.names, "pid": lane.pid, "log": str(lane.log)}
            if error is not None and failed is None:
                failed = StageFailed(f"{error}\n  (lane {lane_name}; its log: {lane.log})\n  fix it, then resume "
                                     f"with: {resume}")
        if failed is not None:
            raise failed
    except BaseException:
        catalog.end_pipeline_run(run, "failed")
        raise
    finally:  # a lane still running when this process stops is stopped with it (a rerun resumes it)
        for lane in started.values():
            lane.stop()
    result["outputs"] = {s.name: result["outputs"][s.name] for s in todo if s.name in result["outputs"]}
    catalog.end_pipeline_run(run, result["status"])
    return result


def _run_step(ctx: Context, name: str, step: Step, run: str, resume: str) -> dict[str, Any]:
    """One stage: recorded as running (the stages made from it stale), run, recorded as done, waiting or failed."""
    catalog = ctx.catalog
    catalog.stage_started(name, step.name, step.position, step.kind, step.recipe_hash, step.inputs, step.inputs_hash,
                          run, stale=step.dependents)
    try:
        outputs: dict[str, Any] = json.loads(json.dumps(RUNNERS[step.kind](ctx, step), default=str))
    except Exception as exc:  # any stage's failure: recorded, then the run stops with it
        catalog.stage_ended(name, step.name, "failed", error=str(exc))
        fix = f"\n  fix it, then resume with: {resume}" if resume else ""  # a lane's parent adds its own
        raise StageFailed(f"stage {step.name} ({step.kind}) failed: {exc}{fix}") from exc
    catalog.stage_ended(name, step.name, "waiting" if outputs.get("waiting") else "done", outputs)
    return outputs


@dataclass
class Lane:
    """A lane's stages running in a spawned process (`_lane_main`), which sends each stage's start, outputs or
    failure back; a thread here passes the starts to `say` as they come."""

    names: list[str]
    log: Path
    process: Any
    conn: Any
    reader: threading.Thread | None = None
    done: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @classmethod
    def start(cls, root: Path, path: Path, pipeline: str, run: str, lane: str, steps: list[Step],
              say: Callable[[str], None]) -> Lane:
        import multiprocessing as mp

        from catalogs.stage import main_not_rerun

        log = root / "logs" / f"{pipeline}-lane-{lane}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        ctx = mp.get_context("spawn")  # fork beside torch's and DuckDB's threads is not safe
        ours, theirs = ctx.Pipe(duplex=False)
        # Not a daemon: a stage in the lane may start workers of its own (a judge's process pool). If this process
        # dies, the lane stops at its next stage, whose start it can no longer report.
        process = ctx.Process(target=_lane_main, name=f"lane-{lane}", daemon=False, args=(
            theirs, log, root, path, pipeline, run, [s.as_dict() for s in steps]))
        with main_not_rerun():  # the child must not run the caller's script again (it may lack the __main__ guard)
            process.start()
        theirs.close()  # the child's end: recv() then sees EOF if the child dies
        new = cls([s.name for s in steps], log, process, ours)
        new.reader = threading.Thread(target=new._read, args=(lane, say), name=f"lane-{lane}-reader", daemon=True)
        new.reader.start()
        return new

    def _read(self, lane: str, say: Callable[[str], None]) -> None:
        while True:
            try:
                kind, *rest = self.conn.recv()
            except (EOFError, OSError):
                return
            if kind == "say":
                say(f"{rest[0]}  [lane {lane}]")
            elif kind == "done":
                self.done[rest[0]] = rest[1]
            elif kind == "failed":
                self.error = rest[0]

    def wait(self) -> tuple[dict[str, Any], str | None]:
        """Block until the lane's process ends: the outputs of the stages it finished, and its error, if any."""
        if self.reader is not None:
            self.reader.join()
        self.process.join()
        if self.error is None and len(self.done) < len(self.names):
            self.error = (f"the lane's process ended (exit code {self.process.exitcode}) before stage "
                          f"{self.names[len(self.done)]} finished")
        return self.done, self.error

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.conn.close()


def _lane_main(conn: Any, log: Path, root: Path, path: Path, pipeline: str, run: str,
               steps: list[dict[str, Any]]) -> None:
    """A lane's process: its own catalog handle and the pipeline's torch settings; the lane's stages in order, each
    as the parent runs one; its log lines (the trainers' included) go to the lane's log."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        checked = check_pipeline(path)
        settings = load_pipeline(path).torch
        if settings is not None:
            set_torch(settings)
        catalog = Catalog(root, create=False)
        ctx = Context(catalog, path.resolve().parent, say=lambda msg: conn.send(("say", msg)))
        for d in steps:
            stage, parsed = checked[d["position"]]
            step = Step(**d, stage=stage, parsed=parsed)
            conn.send(("say", f"stage {step.position + 1}/{len(checked)} {step.name} ({step.kind}): {step.why}"))
            print(f"--- stage {step.name} ({step.kind})", flush=True)
            conn.send(("done", step.name, _run_step(ctx, pipeline, step, run, "")))
    except StageFailed as exc:
        conn.send(("failed", str(exc)))
    except BaseException:  # noqa: BLE001 - whatever it was goes back to the parent, which raises it
        conn.send(("failed", traceback.format_exc()))
    finally:
        conn.close()


def set_torch(settings: TorchSettings) -> None:
    """Apply a pipeline's `torch:` settings to this process (threads, deterministic algorithms)."""
    import torch

    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    if settings.deterministic:
        torch.use_deterministic_algorithms(True)


# ---------------------------------------------------------------------------------------------- the stages
def _path(ctx: Context, value: str) -> Path:
    from catalogs.recipes import resolve_path

    return resolve_path(value, ctx.base / "pipeline.yaml")


def _out(ctx: Context, value: str) -> Path:
    """An output path of the pipeline file, its folder made."""
    out = _path(ctx, value)
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _recipe(ctx: Context, step: Step) -> Path:
    assert step.stage.recipe is not None  # check_pipeline requires it for these kinds
    return _path(ctx, step.stage.recipe)


def _engine(ctx: Context, local: Any, kind: str) -> Any:
    """The stage's runner for `--engine`: the local one, or the engine the `r1f` face hands down for this kind."""
    from catalogs.clikit import stage_runner
    from catalogs.engines import StageEngines

    return stage_runner(local, StageEngines(kind), ctx.engine if kind in ENGINE_KINDS else "local", ctx.address,
                        ctx.workers)


def _ingest(ctx: Context, step: Step) -> dict[str, Any]:
    from catalogs.ingest import IngestOptions, hub_repo_id, ingest

    a: IngestArgs = step.parsed
    source = a.source if hub_repo_id(a.source) else str(_path(ctx, a.source))
    opts = IngestOptions(source=a.name or Path(a.source).name.split(".")[0], generations=a.generations,
                         model=a.model, rename=a.rename, kind=a.kind, domain=a.domain, language=a.language,
                         split=a.split, config=a.config, revision=a.revision,
                         max_record_bytes=int(a.max_record_mb * 2**20), choices=tuple(a.choices),
                         shuffle_choices=a.shuffle_choices)
    report = ingest(ctx.catalog, source, opts).as_dict()
    report.pop("seconds", None)
    return report


def _generate(ctx: Context, step: Step) -> dict[str, Any]:
    from catalogs.clikit import pick_engine
    from catalogs.engines import StageEngines
    from factory.generate import generate_from_recipe, prepare_recipe

    checked = prepare_recipe(_recipe(ctx, step))
    runner = pick_engine(StageEngines("generate"), ctx.engine)
    if runner is not None:
        return runner(checked, ctx.catalog, address=ctx.address, workers=ctx.workers)
    return generate_from_recipe(checked, ctx.catalog, backend=ctx.backend)


def _judge(ctx: Context, step: Step) -> dict[str, Any]:
    from judges.run import judge_catalog

    return _engine(ctx, judge_catalog, "judge")(ctx.catalog, step.parsed)


def _filter(ctx: Context, step: Step) -> dict[str, Any]:
    from filters.run import filter_catalog

    return _engine(ctx, filter_catalog, "filter")(ctx.catalog, step.parsed)


def _rewrite(ctx: Context, step: Step) -> dict[str, Any]:
    from factory.rewrite import rewrite_catalog

    return rewrite_catalog(ctx.catalog, step.parsed)


def _review(ctx: Context, step: Step) -> dict[str, Any]:
    """The gate: done when no sample of its queue waits for a person; else the run stops here."""
    from review.queue import QueueSpec, build

    a: ReviewArgs = step.parsed
    queue = build(ctx.catalog, QueueSpec(where=a.where, release=step.stage.release, disagree=a.disagree,
                                         sample=a.sample, seed=a.seed))
    state = queue.state(ctx.catalog)
    command = "r1f review" + (f" --release {step.stage.release}" if step.stage.release else "") + (
        f' --where "{a.where}"' if a.where else "") + (" --disagree" if a.disagree else "") + (
        f" --sample {a.sample} --seed {a.seed}" if a.sample else "")
    return {"total": state["total"], "reviewed": state["reviewed"], "waiting": state["left"], "command": command}


def _release(ctx: Context, step: Step) -> dict[str, Any]:
    from releases.release import create_release

    spec, args = step.parsed if isinstance(step.parsed, tuple) else (None, step.parsed)
    assert step.stage.release is not None
    manifest = create_release(ctx.catalog, step.stage.release, args.where, recipe=spec)
    return {"release": step.stage.release, "members": manifest["members"], "prompts": manifest["prompts"],
            "members_sha256": manifest["members_sha256"]}


def _export(ctx: Context, step: Step) -> dict[str, Any]:
    from releases.release import export_release

    a: ExportArgs = step.parsed
    assert step.stage.release is not None
    out = export_release(ctx.catalog, step.stage.release, _out(ctx, a.out), fmt=a.format, style=a.style,
                         overwrite=True)  # a stage that runs again replaces what it wrote
    return {"release": step.stage.release, "out": str(out)}


def _publish(ctx: Context, step: Step) -> dict[str, Any]:
    from releases.publish import publish

    a: PublishArgs = step.parsed
    assert step.stage.release is not None
    return publish(ctx.catalog, step.stage.release, a.repo_id, private=a.private, revision=a.revision,
                   license=a.license, say=ctx.say)


def _report(ctx: Context, step: Step) -> dict[str, Any]:
    from releases.report import write_report

    a: ReportArgs = step.parsed
    release = step.stage.release
    default = f"report-{release}.html" if release else "report.html"
    out = write_report(ctx.catalog, release, _out(ctx, a.out or default))
    return {"release": release, "out": str(out)}


def _train(ctx: Context, step: Step) -> dict[str, Any]:
    from training.runs import without_steps

    if step.kind == "sft":
        from training.sft import run_sft

        summary = run_sft(ctx.catalog, _recipe(ctx, step))
    elif step.kind == "reward":
        from training.reward import run_reward

        summary = run_reward(ctx.catalog, _recipe(ctx, step))
    else:
        from training.grpo import run_grpo

        summary = run_grpo(ctx.catalog, _recipe(ctx, step))
    return without_steps(summary)


def _eval(ctx: Context, step: Step) -> dict[str, Any]:
    from training.evaluate import run_eval

    sampler = _engine(ctx, None, "eval")
    result = run_eval(ctx.catalog, _recipe(ctx, step), backend=ctx.backend, sampler=sampler)
    return {"run_id": result["run_id"], "scores": result["scores"]}


RUNNERS: dict[str, Callable[[Context, Step], dict[str, Any]]] = {
    "ingest": _ingest, "generate": _generate, "judge": _judge, "filter": _filter, "review": _review,
    "release": _release, "export": _export, "publish": _publish, "report": _report, "sft": _train,
    "grpo": _train, "reward": _train, "eval": _eval, "rewrite": _rewrite}
