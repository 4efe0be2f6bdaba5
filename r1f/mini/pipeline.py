"""Mini-R1 as a pipeline recipe: `OUT/pipeline.yaml`, its stages' recipes under `OUT/recipes/`, run by `r1f run`.

The demo does what only a demo does (writes the task world, pretrains the base models from scratch, in
r1f/mini/model.py), then writes one pipeline file with every R1 stage (ingest, eval, R1-Zero GRPO, the cold start,
reasoning RL, rejection sampling and its 3:1 release, distillation, SFT of the base on that release, reward
models, RL over all scenarios), runs it with `pipelines.run.run_pipeline` (what
`r1f run` calls), and builds its summary from the catalog: eval scores, trainings, the stages' times and the accept
rates. Run ids are not known when the recipes are written, so every selection names what is known: the model
that made a run (`runs.model`) or a source. A rerun in the same folder skips every stage the catalog has done with
the same recipe and inputs.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console
from rich.table import Table

from r1f.mini.model import param_count, pretrain
from r1f.mini.world import WorldFiles, WorldSpec, write_world

if TYPE_CHECKING:
    from catalogs.store import Catalog
    from pipelines.recipe import TorchSettings
    from r1f.mini.model import Pretraining

TEMPLATES = Path(__file__).resolve().parent / "templates"
console = Console()

TRAIN_SOURCE = "mini/train"
NR_SOURCE = "mini/chat"
HELDOUT = "mini-heldout"
CHAT_BENCH = "mini-chat"  # the non-reasoning prompts with their fixed answers, scored by exact match


@dataclass(frozen=True)
class MiniConfig:
    """Sizes of every stage. `full()` is `make demo`; `quick()` is the integration test's shortened path."""

    seed: int = 0
    world: WorldSpec = field(default_factory=WorldSpec)
    base_steps: int = 1000
    student_steps: int = 600
    eval_problems: int = 200
    # Every eval samples each problem 8 times, as the base's and R1-Zero's do: at k=2 twice the standard error of a
    # gain between two stages was about 7 points (the cold-start model read 55.5% at k=2, 53.9% at k=8).
    eval_k: int = 8
    # The base's and R1-Zero's evals sample each held-out problem 8 times: twice the standard error of a gain is then
    # about 3 points (about 6.4 at k=2), so a real gain of a few points shows.
    zero_eval_k: int = 8
    zero_steps: int = 80
    zero_seeds: tuple[int, ...] = (0, 1, 2)
    # R1-Zero's learning rate (and the GRPO-alone student's). At 2e-4 every variant tried fell; at 1e-4 seed 1 fell
    # with the gated reward (24.1% -> 23.3%); 5e-5 is the rate every gain in the README was made at.
    zero_lr: float = 5e-5
    cold_prompts: int = 300
    cold_tries: int = 6          # cold start: most samples of the R1-Zero model's own outputs per prompt
    # and the prompts they sample (through R1-Zero's own instruction prompt 300 gave 60-72 released, and 400 gave 16
    # on a seed-1 run; through the pretraining dialogue 400 give 281 on seed 0 and 333 on seed 1)
    cold_zero_prompts: int = 400
    # Cold-start traces must compute their problem step by step (`arithmetic_steps`), not only end on its answer:
    # many of the R1-Zero model's right answers come through a miscopied problem or a false step, and SFT on them
    # halved the cold-start model's pass@1 (53% -> 23-26%). The quick path leaves the check out: its barely trained
    # model makes no such trace, and the path must still show the rewrite and its lineage.
    cold_steps: bool = True
    cold_epochs: int = 3
    # Reasoning RL (the paper's stage 2) on the cold-started model, trained as R1-Zero is: accuracy counted only in
    # the right format, sampled as the eval samples (T 0.6, top-p 0.95), lr 5e-5, 80 steps. Seed 0, k=8, from the
    # cold start's 53.9%: the old recipe (rewards summed, T 1.0, lr 1e-4, 30 steps) 52.4%; the same at T 0.6 45.0%;
    # at lr 5e-5 50.8%, gated 51.8% (both 30 steps); at 80 steps summed 57.4%, gated 58.1% (+4.2, 2SE 3.5). The
    # causes were the rate (at 1e-4 it falls) and the steps (30 are too few to gain); the gate changes little here.
    rl_steps: int = 80
    rl_lr: float = 5e-5
    rs_prompts: int = 600
    distill_epochs: int = 4
    rs_samples: int = 4          # rejection sampling: most samples per prompt
    # Rejection sampling keeps only traces that compute their problem step by step (`arithmetic_steps`), as the
    # cold start does. Judged on the answer alone, 21 of the mix's 342 reasoning traces (seed 0) reached it through a
    # false step, and stage 3 landed below the cold start (k=8: 57.1% against 60.7%; stage 4 55.7%). With the check
    # (as many samples drawn, 438 prompts kept against 449): stage 3 66.1%, stage 4 66.9% (+6.2, 2SE 3.4); seed 1
    # 77.8%, 75.5% (+16.3 over 59.3%, 2SE 3.3).
    rs_steps: bool = True
    batch_prompts: int = 8       # GRPO prompts per step
    generations: int = 8         # GRPO group size
    # The student trained by GRPO alone gets a fixed budget of optimizer steps (as many as R1-Zero takes on the
    # base), never "what fits in the distillation's wall time": the table must not depend on the machine.
    student_grpo_steps: int = 80
    # R1's stages 3 and 4: SFT of the base on the released mix; reward models for helpfulness and harmlessness,
    # trained from the student base on the world's preference pairs; RL over all scenarios from the stage-3 model.
    # The paper's 2 epochs are over 800k samples; over this mix's ~450 they left stage 3 below the cold-start model
    # (seed 0, k=8: 52.1% against 53.9%), 3 epochs gave 57.1%, 4 (as many as the distillation's) 57.9%. With the
    # cold start sampled through the dialogue and the step-checked mix, 4 epochs gave 62.1% (the cold start 62.5%,
    # reasoning RL 68.8%) and 8 epochs 71.5% (chat exact match 50.3% -> 71.7%): ~228 optimizer steps over ~456 samples.
    mix_sft_epochs: int = 8
    rm_epochs: int = 2
    # Stage 4 samples as reasoning RL does (T 0.6, top-p 0.95): at T 1.0 and 20 steps it gained nothing over stage 3
    # (56.1% -> 54.7%; 52.1% -> 51.8%), at T 0.6 and 40 steps 52.1% -> 55.0%.
    all_rl_steps: int = 40
    all_rl_lr: float = 5e-5
    threads: int = 1             # torch threads: floating-point sums, so the numbers, depend on it

    @classmethod
    def full(cls, seed: int = 0, threads: int = 1) -> MiniConfig:
        return cls(seed=seed, world=WorldSpec(seed=seed), threads=threads)

    @classmethod
    def quick(cls, seed: int = 0, threads: int = 1) -> MiniConfig:
        """Every stage, at the smallest sizes that still give each stage something to do (the cold start and
        rejection sampling accept some samples): the test checks that stages run, counts and lineage, not learning."""
        return cls(seed=seed, world=WorldSpec(seed=seed, train=300, heldout=40, pretrain_docs=3000, curated=48),
                   base_steps=120, student_steps=60, eval_problems=40, eval_k=1, zero_eval_k=1, zero_steps=4, zero_seeds=(0,),
                   cold_prompts=40, cold_zero_prompts=40, cold_epochs=3, rl_steps=3, rs_prompts=160, rs_samples=8,
                   distill_epochs=2, batch_prompts=4, generations=4, student_grpo_steps=4, rm_epochs=1,
                   mix_sft_epochs=2, all_rl_steps=2, cold_steps=False, rs_steps=False, threads=threads)

    def key(self) -> str:
        """Everything that makes a run's artefacts: this config (the seed and thread count included) and the
        versions of the training stack. A folder holds the artefacts of one key only."""
        from importlib.metadata import version

        from catalogs.ids import content_hash

        stack = {name: version(name) for name in ("torch", "transformers", "trl")}
        return content_hash("mini-r1", asdict(self), stack)[:16]


# The R1-Zero rewards (and the GRPO-alone student's): rule rewards only, as the paper's R1-Zero, with accuracy
# counted only where the format holds. Summed at equal weight, the format prize went mostly to wrong answers (the
# base writes the format on 85% of samples and is right on 6% of train problems under this prompt): format rose to
# 0.99 while accuracy fell (5.9% -> 3.7%). Gated, only right and well-formed samples gain.
ZERO_REWARDS: list[Any] = [{"judge": "math_accuracy", "gated_by": [{"judge": "format",
                                                                    "params": {"template": "r1_zero"}}]}]
# Reasoning RL's rewards: R1-Zero's accuracy gated by the format (summed, a well-formed wrong answer scored as much as
# a malformed right one; the cold-started model is well formed on 99% of samples, so it matters little here) and the
# paper's language-consistency reward.
RL_REWARDS: list[Any] = [{"judge": "math_accuracy", "gated_by": [{"judge": "format"}]},
                         {"judge": "language_consistency", "weight": 0.5}]
# The process check of a reasoning trace: each step true and the steps the problem's own left-to-right evaluation.
# A right answer reached through a false step (`5-7=-1, -1+8=6`) or a miscopied problem passes `math_accuracy` and
# teaches that step to whatever is trained on it.
STEPS_JUDGE: dict[str, Any] = {"name": "arithmetic_steps", "params": {"follows_problem": True}}
PIPELINE = "mini-r1"
# The pipeline's one lane: stages nothing after them reads but the summary (R1-Zero's other seeds; the student's base
# eval and its GRPO-alone run), in a second process beside the rest where the cores allow (`r1f run`'s lanes).
SIDE = "side"
REPORT = "report-mini-r1-mix.html"  # the release report stage's file, in OUT
NR_MODEL = "mini-v3-sft-data"      # the imported non-reasoning answers (V3's SFT data in the paper)
CURATED_MODEL = "mini-annotators"  # the hand-cleaned cold-start traces
# The prompt the cold start samples the R1-Zero model's own outputs through (its template file says why it is not
# R1-Zero's training prompt).
ZERO_SAMPLES_TEMPLATE = "r1_zero_dialogue_mini"
# The summary rows of the cold start's sources: two made by the model, one by hand.
COLD_ROWS = ("cold start: few-shot prompting (model-made)", "cold start: R1-Zero outputs rewritten (model-made)",
             "cold start: hand-written")


def mini_torch(cfg: MiniConfig) -> TorchSettings:
    """The run's torch settings: its thread count, deterministic algorithms (the pipeline file's `torch:`)."""
    from pipelines.recipe import TorchSettings

    return TorchSettings(threads=cfg.threads, deterministic=True)


def sql_text(value: str) -> str:
    """`value` as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def runs_of(*models: str) -> str:
    """A selection of the generations the named models made (an import's model name or a model folder), eval runs
    left out. Run ids are unknown when the pipeline's recipes are written; the models that make them are known."""
    names = ", ".join(sql_text(m) for m in models)
    return f"run_id IN (SELECT r.run_id FROM runs r WHERE r.model IN ({names}) AND r.kind IS DISTINCT FROM 'eval')"


def runs_where(model: str, *, kind: str = "generate", template: str | None = None) -> str:
    """A selection of the generations of `model`'s runs of one kind (and template): where one model made several
    sets (the R1-Zero model's few-shot samples, its own-template outputs, their rewrites), one of them."""
    cond = f"r.model = {sql_text(model)} AND r.kind = {sql_text(kind)}"
    if template is not None:
        cond += f" AND r.template = {sql_text(template)}"
    return f"run_id IN (SELECT r.run_id FROM runs r WHERE {cond})"


def cold_start_sources(zero: Path) -> tuple[str, str, str]:
    """The cold start's three sources as selections: the R1-Zero model's few-shot samples, the rewrites of its
    own-template outputs (both model-made), and the hand-written traces."""
    return (runs_where(str(zero), template="cold_start_mini"), runs_where(str(zero), kind="rewrite"),
            runs_of(CURATED_MODEL))


def two_se(p1: float, p2: float, n: int) -> float:
    """Twice the standard error, in points, of the difference of two pass@1 estimates (percent), each the mean of
    `n` samples (problems x k) scored right or wrong: a gain larger than this is more than the eval's noise."""
    a, b = p1 / 100, p2 / 100
    return 200 * math.sqrt((a * (1 - a) + b * (1 - b)) / max(n, 1))


def pyplot() -> Any:
    """matplotlib's pyplot drawing to files (the Agg backend), or None where matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


@dataclass
class Row:
    stage: str
    model: str
    params: int | None = None
    pass_at_1: float | None = None
    exact_match: float | None = None
    kept: int | None = None
    accept_rate: float | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class RowSpec:
    """A summary row and where the catalog holds its numbers."""

    stage: str
    model: str
    path: Path | None = None          # the model folder (its parameter count)
    eval_stage: str | None = None     # the eval stage whose held-out pass@1 this is
    timed: tuple[str, ...] = ()       # the pipeline stages whose wall time this row sums
    seconds: float | None = None      # or a time the demo measured itself (pretraining)
    release: str | None = None        # the release whose members are the samples kept
    accept_of: str | None = None      # the model whose generations' accept rate (every judge passed) is shown
    chat_eval_stage: str | None = None  # the eval stage whose non-reasoning exact match this is
    accept_where: str | None = None   # or the selection (over generation_meta) whose accept rate is shown
    members_of: str | None = None     # the release's members counted are those this selection holds


class Mini:
    """One Mini-R1 run in `out`: world files, base models, the pipeline file and its recipes, and the catalog."""

    def __init__(self, out: Path, cfg: MiniConfig, catalog: Catalog) -> None:
        self.out, self.cfg, self.catalog = out, cfg, catalog
        self.key = cfg.key()
        self.files: WorldFiles | None = None
        self.sections: list[tuple[str, list[dict[str, Any]]]] = []
        self.specs: list[RowSpec] = []
        self.pretrain_seconds: dict[str, float] = {}
        self.rows: list[Row] = []
        self.zero_gains: list[float] = []
        self.zero_noise: list[float] = []
        self.figures: list[Path] = []
        self.started = time.perf_counter()

    @staticmethod
    def claim(out: Path, cfg: MiniConfig) -> None:
        """Mark `out` as the folder of this config's run, or refuse one that holds another run's artefacts: the
        catalog, the world files and the released sets of another seed would mix with this one's."""
        from catalogs.errors import UserError

        marker = out / "mini-run.json"
        key = cfg.key()
        if marker.exists():
            held = json.loads(marker.read_text())
            if held.get("key") != key:
                raise UserError(f"{out} holds another Mini-R1 run (seed {held.get('seed')}, key {held.get('key')}); "
                                f"this one is seed {cfg.seed}, key {key}. Give a fresh --out folder for each run.")
            return
        out.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps({"key": key, "seed": cfg.seed, "config": asdict(cfg)}, indent=1))

    # ------------------------------------------------------------------------------------ helpers
    def step(self, command: str) -> None:
        console.rule(f"[bold]$ r1f {command}", align="left")

    def banner(self, title: str) -> None:
        console.rule(f"[bold cyan]{title}  [dim](demo clock {time.perf_counter() - self.started:.0f}s)", align="left")

    def model_dir(self, name: str) -> Path:
        return self.out / "models" / name

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple]:
        with self.catalog.reader() as con:
            return con.execute(query, params or []).fetchall()

    def rel(self, path: Path) -> str:
        """A path as the pipeline file names it: relative to OUT, where the pipeline file is."""
        return path.relative_to(self.out).as_posix()

    @property
    def pipeline(self) -> Path:
        return self.out / "pipeline.yaml"

    def command(self) -> str:
        return f"r1f run {self.pipeline} --catalog {self.catalog.root}"

    # ------------------------------------------------------------------------------------ 1. the world
    def world(self) -> WorldFiles:
        self.banner("1. the task world")
        files = write_world(self.out / "world", self.cfg.world)
        self.files = files
        console.print(f"seed {self.cfg.seed}: {self.cfg.world.train} train and {self.cfg.world.heldout} held-out "
                      f"arithmetic problems, {self.cfg.world.pretrain_docs} raw pretraining documents "
                      f"({self.cfg.world.fact_share:.0%} of them facts and greetings), "
                      f"non-reasoning prompts with fixed answers -> {files.train.parent}")
        return files

    # ------------------------------------------------------------------------------------ 2. base models
    def base(self, name: str, steps: int, size: Any, apart: Pretraining | None = None) -> Path:
        """Pretrain a base from scratch on the world's raw text (reused when the same settings made it), here or,
        given `apart`, in the second process that pretrains it."""
        assert self.files is not None
        self.banner(f"2. {name}: a tiny Qwen2 trained from scratch on raw worked solutions and facts "
                    "(no chat format)" + (f"; pretrained in a second process (its log: {apart.log})"
                                          if apart is not None and apart.process is not None else ""))
        out = self.model_dir(name)
        info = (apart.result() if apart is not None
                else pretrain(out, self.files.pretrain, size, steps=steps, seed=self.cfg.seed))
        self.pretrain_seconds[name] = float(info.get("train_seconds") or 0.0)
        console.print(f"{name}: {param_count(out):,} parameters, {steps} steps, loss {info['first_loss']:.2f} -> "
                      f"{info['final_loss']:.2f}")
        return out

    # ------------------------------------------------------------------------------------ the pipeline's stages
    def section(self, title: str) -> None:
        self.sections.append((title, []))

    def stage(self, name: str, kind: str, recipe: dict[str, Any] | None = None, **fields: Any) -> str:
        """Add a stage to the current section; its recipe, if any, goes to OUT/recipes/NAME.yaml."""
        entry: dict[str, Any] = {"name": name, "kind": kind}
        if recipe is not None:
            path = self.out / "recipes" / f"{name}.yaml"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True))
            entry["recipe"] = self.rel(path)
        entry.update({k: v for k, v in fields.items() if v is not None})
        self.sections[-1][1].append(entry)
        return name

    def eval(self, label: str, model: Path, template: str, k: int | None = None,
             benchmark: dict[str, Any] | None = None, judge: str = "math_accuracy", lane: str | None = None) -> str:
        """`r1f eval` on the held-out problems (or `benchmark`, scored by `judge`), with the transformers backend
        (a tiny model answers them all sooner than vLLM starts); k samples per problem (default: eval_k)."""
        assert self.files is not None
        return self.stage(f"eval-{label}", "eval", {
            "name": f"eval-{label}",
            "backend": {"name": "transformers", "model": str(model)},
            "benchmarks": [benchmark or {"name": HELDOUT, "file": str(self.files.heldout),
                                         "limit": self.cfg.eval_problems}],
            "template": {"file": str(TEMPLATES / template)},
            "sampling": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 64, "seed": self.cfg.seed},
            "k": k or self.cfg.eval_k, "judges": [judge]}, lane=lane)

    def grpo(self, name: str, model: Path, template: str, rewards: list[Any], steps: int, seed: int,
             lr: float = 2e-4, prompts: str = f"source = '{TRAIN_SOURCE}'", lane: str | None = None,
             **trl: Any) -> Path:
        out = self.model_dir(name)
        self.stage(f"grpo-{name}", "grpo", lane=lane, recipe={
            "name": name, "model": str(model), "output_dir": str(out),
            "prompts": {"where": prompts},
            "template": {"file": str(TEMPLATES / template)},
            "rewards": rewards,
            "trl": {"max_steps": steps, "learning_rate": lr, "beta": 0.0, "num_generations": self.cfg.generations,
                    "per_device_train_batch_size": self.cfg.batch_prompts * self.cfg.generations,
                    "max_completion_length": 48, "temperature": 0.7, "logging_steps": max(1, steps // 8),
                    "save_strategy": "no", "report_to": "none", "seed": seed, "disable_tqdm": True,
                    "lr_scheduler_type": "constant", "warmup_steps": 0, **trl}})
        return out

    def sft(self, name: str, model: Path, release: str, epochs: int, lr: float = 1e-3) -> Path:
        out = self.model_dir(name)
        self.stage(f"sft-{name}", "sft", {
            "name": name, "model": str(model), "release": release, "output_dir": str(out),
            "trl": {"num_train_epochs": epochs, "learning_rate": lr, "per_device_train_batch_size": 16,
                    "max_length": 128, "logging_steps": 5, "save_strategy": "no", "report_to": "none",
                    "seed": self.cfg.seed, "disable_tqdm": True, "lr_scheduler_type": "cosine",
                    "warmup_steps": 2}})
        return out

    def generate(self, name: str, backend: dict[str, Any], template: dict[str, Any], limit: int,
                 judges: list[Any], per_prompt: int = 1, max_samples: int = 2, where: str | None = None,
                 retry: int = 1) -> str:
        return self.stage(name, "generate", {
            "name": name.removeprefix("generate-"),
            "prompts": {"where": where or f"source = '{TRAIN_SOURCE}'", "limit": limit},
            "backend": backend,
            "template": template,
            "sampling": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 64, "seed": self.cfg.seed},
            "samples_per_prompt": per_prompt,
            "budget": {"max_samples": max_samples, "round_size": 1, "retry_samples": retry},
            "judges": judges})

    def filters(self, name: str, models: list[str], where: str | None = None) -> str:
        return self.stage(name, "filter", {"where": where or runs_of(*models), "workers": 1, "filters": [
            {"name": "hygiene"},
            {"name": "language_mixing", "where": "kind = 'reasoning'"},
            {"name": "long_paragraphs", "where": "kind = 'reasoning'"},
            {"name": "code_blocks", "where": "kind = 'reasoning'"},
            {"name": "dedup"}]})

    def cold_start(self, zero: Path) -> tuple[str, ...]:
        """Section 4's stages, as the paper gathers its cold start: few-shot prompting of the R1-Zero model with
        long-CoT examples; the R1-Zero model's own outputs (sampled through its pretraining dialogue, rejection
        sampled) rewritten into the readable pattern by the `readable` rewriter (reformatting only: the reasoning
        stays verbatim); both judged like the hand-written traces, then filtered and released one per prompt. The
        model-made sets sample the train prompts the hand-written set does not cover, so the hand-written set stays
        whole in the release.
        Returns the stage names: few-shot; R1-Zero outputs, rewrite, judge; ingest, judge and filter the
        hand-written; filter the model-made, release."""
        assert self.files is not None
        cfg, files = self.cfg, self.files
        few_shot, rewritten, curated = cold_start_sources(zero)
        steps: list[Any] = [STEPS_JUDGE] if cfg.cold_steps else []
        readable = ["math_accuracy", {"name": "format", "params": {"template": "think"}}, *steps]
        ingest = self.stage("ingest-curated", "ingest", args={"source": self.rel(files.curated), "name": TRAIN_SOURCE,
                                                             "generations": True, "model": CURATED_MODEL})
        judge_curated = self.stage("judge-curated", "judge", {"where": curated, "workers": 1, "judges": [
            {"name": j} if isinstance(j, str) else j for j in readable]})
        uncovered = (f"source = '{TRAIN_SOURCE}' AND prompt_id NOT IN (SELECT g.prompt_id FROM generation_meta g "
                     f"WHERE g.{curated})")
        # The tiny model loses the problem after long examples (its pretraining saw one short document at a time):
        # the examples are the shortest worked solutions. Few-shot is right on about 2-3% of samples here, the
        # R1-Zero model through the pretraining dialogue on 34-41% (T 0.7): a prompt it has not solved gets more
        # tries.
        gen_few = self.generate("generate-cold-start", {"name": "transformers", "model": str(zero)},
                                {"file": str(TEMPLATES / "cold_start_mini.yaml"), "examples_file": str(files.examples)},
                                cfg.cold_prompts, readable, where=uncovered)
        gen_zero = self.generate("generate-cold-start-r1-zero", {"name": "transformers", "model": str(zero)},
                                 {"file": str(TEMPLATES / f"{ZERO_SAMPLES_TEMPLATE}.yaml")}, cfg.cold_zero_prompts,
                                 ["math_accuracy", {"name": "format", "params": {"template": "r1_zero"}}, *steps],
                                 max_samples=cfg.cold_tries, retry=cfg.cold_tries - 1, where=uncovered)
        rewrite = self.stage("rewrite-cold-start", "rewrite", {
            "rewriter": "readable", "where": runs_where(str(zero), template=ZERO_SAMPLES_TEMPLATE)})
        judge_rewrites = self.stage("judge-cold-start-rewrites", "judge", {"where": rewritten, "workers": 1, "judges": [
            {"name": j} if isinstance(j, str) else j for j in readable]})
        # Filtered apart: dedup keeps the first of two equal texts, and a model's sample for another prompt may
        # equal a hand-written trace (a miscopied problem); the hand-written set stays whole.
        filter_curated = self.filters("filter-curated", [], curated)
        model_made = f"({few_shot}) OR ({rewritten})"
        return (gen_few, gen_zero, rewrite, judge_rewrites, ingest, judge_curated, filter_curated,
                self.filters("filter-cold-start", [], model_made),
                self.stage("release-mini-cold-start", "release", {
                    "where": f"{model_made} OR ({curated})", "per_prompt": 1, "reasoning": None,
                    "non_reasoning": None}, release="mini-cold-start"))

    def write_pipeline(self, base: Path, student: Path) -> Path:
        """Every R1 stage as one pipeline file, OUT/pipeline.yaml, and each stage's recipe under OUT/recipes/; the
        summary rows, each naming the stages it reads."""
        assert self.files is not None
        cfg, files, rows = self.cfg, self.files, self.specs
        self.sections, rows[:] = [], []

        self.section("1. the task world: train problems; non-reasoning prompts with their answers (V3's SFT data)")
        self.stage("ingest-train", "ingest", args={"source": self.rel(files.train), "name": TRAIN_SOURCE})
        self.stage("ingest-chat", "ingest", args={"source": self.rel(files.non_reasoning), "name": NR_SOURCE,
                                                  "generations": True, "model": NR_MODEL})
        self.section("2. the base (pretrained by `r1f demo`): held-out pass@1")
        rows.append(RowSpec("pretrain (base)", base.name, base, self.eval("base", base, "r1_zero_mini.yaml", cfg.zero_eval_k),
                            seconds=self.pretrain_seconds.get(base.name)))

        self.section("3. R1-Zero: GRPO straight from the base, rule rewards only (accuracy, counted only in the right "
                     "format), one run per seed")
        # Sampled as the eval samples (T 0.6, top-p 0.95). The cold start takes the first seed's model; the others
        # feed only the summary, so they train in the side lane, listed first: the lane starts with the first of them,
        # beside the first seed's run and the stages after it.
        zero: dict[int, Path] = {}
        zero_rows: dict[int, RowSpec] = {}
        first, *others = cfg.zero_seeds
        for seed in (*others, first):
            lane = SIDE if seed != first else None
            zero[seed] = out = self.grpo(f"r1-zero-s{seed}", base, "r1_zero_mini.yaml", ZERO_REWARDS, cfg.zero_steps,
                                         seed, lr=cfg.zero_lr, temperature=0.6, top_p=0.95, lane=lane)
            evaluated = self.eval(out.name, out, "r1_zero_mini.yaml", cfg.zero_eval_k, lane=lane)
            zero_rows[seed] = RowSpec(f"R1-Zero GRPO (seed {seed})", out.name, out, evaluated, (f"grpo-{out.name}",))
        rows += [zero_rows[seed] for seed in cfg.zero_seeds]

        self.section("4. cold start: readable traces made by the R1-Zero model (few-shot prompting; its own outputs "
                     "rewritten into the readable pattern) and hand-cleaned ones, judged, filtered, released; SFT of "
                     "the base on them")
        timed = self.cold_start(zero[first])
        cold_release = "mini-cold-start"
        few_shot, rewritten, curated = cold_start_sources(zero[first])
        rows += [RowSpec(COLD_ROWS[0], zero[first].name, timed=timed[:1],
                         release=cold_release, members_of=few_shot, accept_where=few_shot),
                 RowSpec(COLD_ROWS[1], zero[first].name, timed=timed[1:4],
                         release=cold_release, members_of=rewritten, accept_where=rewritten),
                 RowSpec(COLD_ROWS[2], CURATED_MODEL, timed=timed[4:7], release=cold_release,
                         members_of=curated, accept_where=curated),
                 RowSpec("cold-start collection", zero[first].name, timed=timed[7:], release=cold_release)]
        cold = self.sft("cold-start-sft", base, "mini-cold-start", cfg.cold_epochs)
        rows.append(RowSpec("cold-start SFT of the base", cold.name, cold,
                            self.eval(cold.name, cold, "chat_mini.yaml"), (f"sft-{cold.name}",)))

        self.section("5. reasoning RL: GRPO on the cold-started model, language-consistency reward added")
        rl = self.grpo("reasoning-rl", cold, "chat_mini.yaml", RL_REWARDS, cfg.rl_steps, cfg.seed, lr=cfg.rl_lr,
                       temperature=0.6, top_p=0.95)
        rows.append(RowSpec("reasoning RL (GRPO)", rl.name, rl, self.eval(rl.name, rl, "chat_mini.yaml"),
                            (f"grpo-{rl.name}",)))

        self.section("6. rejection sampling with vLLM and the judges; filters; the paper's 3:1 release and its report")
        vllm = {"name": "vllm", "model": str(rl), "max_model_len": 256, "kv_cache_gb": 1,
                "gpu_memory_utilization": 0.3, "enforce_eager": True}
        timed = (self.generate("generate-rejection-sampling", vllm, {"file": str(TEMPLATES / "chat_mini.yaml")},
                               cfg.rs_prompts, ["math_accuracy", "format", *([STEPS_JUDGE] if cfg.rs_steps else [])],
                               max_samples=cfg.rs_samples),
                 self.stage("judge-rejection-sampling", "judge", {"where": runs_of(str(rl)), "workers": 1,
                                                                 "judges": [{"name": "language_consistency"}]}),
                 self.filters("filter-rejection-sampling", [str(rl), NR_MODEL]),
                 self.stage("release-mini-r1-mix", "release", {
                     "where": runs_of(str(rl), NR_MODEL), "per_prompt": 1, "prefer": "shortest", "reasoning": None,
                     "non_reasoning": None, "reasoning_share": 0.75, "seed": cfg.seed}, release="mini-r1-mix"))
        self.stage("report-mini-r1-mix", "report", release="mini-r1-mix", args={"out": REPORT})
        rows.append(RowSpec("rejection sampling + 3:1 mix", rl.name, timed=timed, release="mini-r1-mix",
                            accept_of=str(rl)))

        self.section("7. distillation: SFT of a smaller student (pretrained by `r1f demo`) on the release; vs the same "
                     "student by GRPO alone")
        rows.append(RowSpec(f"pretrain ({student.name})", student.name, student,
                            self.eval(student.name, student, "r1_zero_mini.yaml", lane=SIDE),
                            seconds=self.pretrain_seconds.get(student.name)))
        distilled = self.sft("student-distilled", student, "mini-r1-mix", cfg.distill_epochs)
        rows.append(RowSpec("distillation (SFT on the release)", distilled.name, distilled,
                            self.eval(distilled.name, distilled, "chat_mini.yaml"), (f"sft-{distilled.name}",)))
        # A fixed budget, the same on every machine: as many optimizer steps as R1-Zero takes on the base, each on
        # batch_prompts x generations samples, more samples than the distillation's epochs show the student.
        steps = cfg.student_grpo_steps
        gout = self.grpo("student-grpo", student, "r1_zero_mini.yaml", ZERO_REWARDS, steps, cfg.seed,
                         lr=cfg.zero_lr, temperature=0.6, top_p=0.95, lane=SIDE)
        rows.append(RowSpec(f"student by GRPO alone ({steps} steps)", gout.name, gout,
                            self.eval(gout.name, gout, "r1_zero_mini.yaml", lane=SIDE), (f"grpo-{gout.name}",)))
        self.all_scenarios(base, student, cold)

        lines = [f"# Mini-R1, seed {cfg.seed}, {cfg.threads} torch thread(s), run key {self.key}: written by `r1f demo`",
                 "# (after it wrote world/ and pretrained models/base and models/student-base). Rerun it, or from one",
                 "# stage on, with:",
                 f"#   {self.command()} [--from STAGE]",
                 f"name: {PIPELINE}",
                 f"torch: {json.dumps(mini_torch(cfg).model_dump())}",
                 "description: DeepSeek-R1's pipeline in miniature (R1-Zero, cold start, reasoning RL, rejection "
                 "sampling, distillation, SFT on the mix, reward models, RL over all scenarios)",
                 "stages:"]
        for title, stages in self.sections:
            lines.append(f"  # {title}")
            dumped = yaml.safe_dump(stages, sort_keys=False, allow_unicode=True, width=1000)
            lines += [f"  {line}" for line in dumped.splitlines()]
        self.pipeline.write_text("\n".join(lines) + "\n")
        return self.pipeline

    # ------------------------------------------------------------------------------------ R1's stages 3 and 4
    def chat_eval(self, label: str, model: Path) -> str:
        """Exact match on the non-reasoning prompts: each answer's summary against the world's fixed one (the
        exact_match judge), not the reward models stage 4 is trained on."""
        assert self.files is not None
        return self.eval(f"chat-{label}", model, "chat_mini.yaml", benchmark={
            "name": CHAT_BENCH, "file": str(self.files.non_reasoning_bench)}, judge="exact_match")

    def reward_model(self, aspect: str, model: Path, pairs: Path) -> Path:
        """A reward model for `aspect` (trl's RewardTrainer on the world's preference pairs), as the paper's
        all-scenario RL uses for non-reasoning prompts."""
        out = self.model_dir(f"rm-{aspect}")
        self.stage(f"reward-{out.name}", "reward", {
            "name": out.name, "model": str(model), "pairs": {"file": str(pairs)}, "aspect": aspect,
            "output_dir": str(out),
            "trl": {"num_train_epochs": self.cfg.rm_epochs, "learning_rate": 1e-3, "per_device_train_batch_size": 16,
                    "max_length": 128, "logging_steps": 5, "save_strategy": "no", "report_to": "none",
                    "seed": self.cfg.seed, "disable_tqdm": True, "lr_scheduler_type": "cosine", "warmup_steps": 2}})
        return out

    def all_scenarios(self, base: Path, student: Path, cold: Path) -> None:
        """Sections 8-10: R1's stage 3 (SFT of the base on the 3:1 mix), the reward models, stage 4 (GRPO from
        stage 3 on reasoning and non-reasoning prompts: rule rewards on the first, reward models on the rest), and
        the non-reasoning exact match of the cold-start model, stage 3 and stage 4."""
        assert self.files is not None
        cfg, files, rows = self.cfg, self.files, self.specs
        self.section(f"8. R1 stage 3: SFT of the base on the released 3:1 mix, {cfg.mix_sft_epochs} epochs")
        # The cold-start model's exact match, the baseline stage 4 must beat (its row is section 4's).
        at = next(i for i, spec in enumerate(rows) if spec.path == cold)
        rows[at] = replace(rows[at], chat_eval_stage=self.chat_eval(cold.name, cold))
        mixed = self.sft("mix-sft", base, "mini-r1-mix", cfg.mix_sft_epochs)
        rows.append(RowSpec("R1 stage 3: SFT of the base on the mix", mixed.name, mixed,
                            self.eval(mixed.name, mixed, "chat_mini.yaml"), (f"sft-{mixed.name}",),
                            chat_eval_stage=self.chat_eval(mixed.name, mixed)))

        self.section("9. reward models (trl's RewardTrainer) on the world's preference pairs: helpfulness judged on "
                     "the summary, harmlessness on the whole response")
        rms = {}
        for aspect, pairs in (("helpfulness", files.helpfulness_pairs), ("harmlessness", files.harmlessness_pairs)):
            rms[aspect] = rm = self.reward_model(aspect, student, pairs)
            rows.append(RowSpec(f"reward model: {aspect}", rm.name, timed=(f"reward-{rm.name}",)))

        self.section("10. R1 stage 4: GRPO from stage 3 over all scenarios: rule rewards on reasoning prompts, the "
                     "reward models on non-reasoning ones")
        reasoning, chat = "kind = 'reasoning'", "kind = 'non_reasoning'"
        rewards: list[Any] = [
            {"judge": "math_accuracy", "where": reasoning, "gated_by": [{"judge": "format"}]},
            {"judge": "format", "where": reasoning},
            {"judge": "language_consistency", "weight": 0.5, "where": reasoning},
            *({"judge": aspect, "where": chat, "params": {"reward_model": str(rm), "max_length": 128}}
              for aspect, rm in rms.items())]
        # Every non-reasoning prompt and every train problem: stage 4 must not lose the reasoning stage 3 has. With
        # a quarter of the train problems (about the mix's 1:3), stage 4 against stage 3 (k=8, from the step-checked
        # mix): seed 0 66.9% / 66.1%, seed 1 75.5% / 77.8%; with all of them 66.7%, 79.4%, and exact match 40.7% ->
        # 41.9%, 13.1% -> 19.9%.
        prompts = f"source IN ('{NR_SOURCE}', '{TRAIN_SOURCE}')"
        final = self.grpo("all-scenarios-rl", mixed, "chat_mini.yaml", rewards, cfg.all_rl_steps, cfg.seed,
                          lr=cfg.all_rl_lr, prompts=prompts, temperature=0.6, top_p=0.95, max_completion_length=64)
        rows.append(RowSpec("R1 stage 4: RL over all scenarios", final.name, final,
                            self.eval(final.name, final, "chat_mini.yaml"), (f"grpo-{final.name}",),
                            chat_eval_stage=self.chat_eval(final.name, final)))

    def run(self) -> dict[str, Any]:
        """`r1f run OUT/pipeline.yaml`: the plan (what runs, what is skipped and why), then the stages that run."""
        from rich.markup import escape

        from pipelines.cli import plan_table
        from pipelines.run import plan, run_pipeline

        self.banner("the pipeline: every R1 stage through `r1f run`")
        command = self.command()
        self.step(command.removeprefix("r1f "))
        name, steps = plan(self.catalog, self.pipeline)
        console.print(plan_table(name, [s.as_dict() for s in steps]))
        return run_pipeline(self.catalog, self.pipeline, resume=command, say=lambda msg: console.rule(
            f"[bold]{escape(msg)}  [dim](demo clock {time.perf_counter() - self.started:.0f}s)", align="left"))

    # ------------------------------------------------------------------------------------ 8. the end
    def results(self) -> list[Row]:
        """The summary's rows, from the catalog: the eval stages' scores, the stages' wall times, the releases'
        members and the generations' verdicts."""
        from training.evaluate import bench_source

        stages = self.catalog.pipeline_stages(PIPELINE)

        def seconds(names: tuple[str, ...]) -> float:
            return sum((s["finished_at"] - s["started_at"]).total_seconds() for n in names
                       if (s := stages.get(n)) and s["finished_at"] and s["started_at"])

        def score(name: str | None, benchmark: str = HELDOUT) -> float | None:
            # An eval run is the model's whatever the benchmark (runs are keyed by model, template and sampling),
            # so a stage's scores may list every benchmark that model was evaluated on: take the stage's own.
            if name is None or name not in stages:
                return None
            scores = [s for s in stages[name]["outputs"].get("scores") or []
                      if s.get("benchmark") in (None, bench_source(benchmark))]
            return float(scores[0]["pass_at_1"]) if scores else 0.0

        rows = []
        for spec in self.specs:
            kept = accept = None
            if spec.release and spec.members_of:
                kept = int(self.sql(f"SELECT count(*) FROM release_members m JOIN generation_meta g "
                                    f"USING (generation_id) WHERE m.release_name = ? AND g.{spec.members_of}",
                                    [spec.release])[0][0])
            elif spec.release:
                got = self.sql("SELECT members FROM releases WHERE name = ?", [spec.release])
                kept = int(got[0][0]) if got else None
            if spec.accept_of or spec.accept_where:
                n, ok = self.accept(spec.accept_of or "", spec.accept_where)
                accept = ok / n if n else 0.0
            rows.append(Row(spec.stage, spec.model, param_count(spec.path) if spec.path else None,
                            score(spec.eval_stage), score(spec.chat_eval_stage, CHAT_BENCH), kept, accept,
                            spec.seconds if spec.seconds is not None else seconds(spec.timed)))
        self.rows = rows
        for name, metrics in self.sql("SELECT output_dir, metrics FROM trainings WHERE kind = 'reward' AND status = "
                                      "'finished' ORDER BY output_dir"):
            got = json.loads(metrics)
            console.print(f"reward model {Path(name).name}: ranks {100 * got.get('accuracy', 0):.0f}% of its "
                          f"{got.get('pairs')} preference pairs right (mean margin {got.get('margin', 0):.2f})")
        base = rows[0].pass_at_1 or 0.0
        scores = [r.pass_at_1 or 0.0 for r in rows if r.stage.startswith("R1-Zero")]
        self.zero_gains = [s - base for s in scores]
        self.zero_noise = [self.noise(base, s, self.cfg.zero_eval_k) for s in scores]
        spread = max(scores) - min(scores) if len(scores) > 1 else float("nan")
        console.print(f"[bold]R1-Zero: base {base:.1f}% -> {', '.join(f'{s:.1f}%' for s in scores)} "
                      f"(seeds {list(self.cfg.zero_seeds)}); gains {self.gains(self.zero_gains, self.zero_noise)} "
                      f"points, seed-to-seed spread {spread:.1f} points[/]")
        c = self.cold_start_counts()
        console.print(f"[bold]cold start: {c['few_shot'] + c['rewritten']} of {c['total']} released samples are "
                      f"model-made ({c['few_shot']} few-shot, {c['rewritten']} R1-Zero outputs rewritten), "
                      f"{c['hand_written']} hand-written[/]")
        return rows

    def cold_start_counts(self) -> dict[str, int]:
        """The cold-start release's members by source (the summary's cold-start rows, read from the catalog)."""
        kept = {r.stage: r.kept or 0 for r in self.rows}
        total = kept.get("cold-start collection", 0)
        return {"few_shot": kept.get(COLD_ROWS[0], 0), "rewritten": kept.get(COLD_ROWS[1], 0),
                "hand_written": kept.get(COLD_ROWS[2], 0), "total": total}

    def accept(self, model: str, where: str | None = None) -> tuple[int, int]:
        """(generations, passing every judge) of the runs `model` made (or of the selection `where`)."""
        row = self.sql(f"""SELECT count(*), count(*) FILTER (WHERE ok) FROM (
            SELECT g.generation_id, bool_and(v.passed) AS ok FROM generation_meta g
            LEFT JOIN verdicts v USING (generation_id) WHERE g.{where or runs_of(model)} GROUP BY ALL)""")[0]
        return int(row[0]), int(row[1] or 0)

    def noise(self, p1: float, p2: float, k: int | None = None) -> float:
        """Twice the standard error of a difference of two of this run's held-out pass@1 scores (k samples each)."""
        return two_se(p1, p2, self.cfg.eval_problems * (k or self.cfg.eval_k))

    @staticmethod
    def gains(gains: list[float], noise: list[float]) -> str:
        """`+6.2 (2SE 5.1)` per gain, with `*` where the gain exceeds its noise."""
        return ", ".join(f"{g:+.1f} (2SE {n:.1f}){'*' if g > n else ''}" for g, n in zip(gains, noise))

    def summary(self) -> Table:
        table = Table(title="Mini-R1 summary", width=max(console.width, 118))
        for col in ("stage", "model", "params", "held-out pass@1", "chat exact match", "samples kept", "accept rate",
                    "wall time"):
            table.add_column(col, justify="left" if col in ("stage", "model") else "right")
        for r in self.rows:
            table.add_row(r.stage, r.model, f"{r.params:,}" if r.params else "",
                          f"{r.pass_at_1:.1f}%" if r.pass_at_1 is not None else "",
                          f"{r.exact_match:.1f}%" if r.exact_match is not None else "",
                          str(r.kept) if r.kept is not None else "",
                          f"{100 * r.accept_rate:.0f}%" if r.accept_rate is not None else "", f"{r.seconds:.0f}s")
        return table

    def write_results(self) -> Path:
        self.figures = [p for p in (self.figure(), self.rl_curves()) if p is not None]
        path = self.out / "summary.json"
        path.write_text(json.dumps({"config": {"seed": self.cfg.seed, "threads": self.cfg.threads, "key": self.key},
                                    "rows": [r.__dict__ for r in self.rows],
                                    "zero_gains": self.zero_gains,
                                    "cold_start": self.cold_start_counts(),
                                    "zero_gains_2se": self.zero_noise,
                                    "figures": [self.rel(p) for p in self.figures],
                                    "total_seconds": time.perf_counter() - self.started}, indent=1))
        return path

    def save(self, plt: Any, fig: Any, name: str) -> Path:
        """A figure laid out, written to OUT/`name` and closed."""
        fig.tight_layout()
        path = self.out / name
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path

    def figure(self) -> Path | None:
        """OUT/pass_at_1.png: each row's held-out pass@1."""
        plt = pyplot()
        if plt is None:
            return None
        scored = [(r.model, r.pass_at_1) for r in self.rows if r.pass_at_1 is not None][::-1]
        fig, ax = plt.subplots(figsize=(8, 3.6))
        ax.barh([m for m, _ in scored], [p for _, p in scored], color="#4c72b0")
        for i, (_, p) in enumerate(scored):
            ax.text(p + 0.5, i, f"{p:.1f}%", va="center", fontsize=8)
        ax.set_xlabel("held-out pass@1 (%)")
        ax.set_xlim(0, 105)
        ax.set_title("Mini-R1: held-out pass@1 per stage")
        return self.save(plt, fig, "pass_at_1.png")

    def curves(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """Each RL stage's row label and its training's curve (one point per logged GRPO step), from the catalog."""
        got = []
        for spec in self.specs:
            if spec.path is None:
                continue
            training = self.catalog.training_of(str(spec.path.resolve()))
            if training and training["kind"] == "grpo":
                got.append((spec.stage, training["metrics"].get("curve") or []))
        return got

    def rl_curves(self) -> Path | None:
        """OUT/rl_curves.png: each RL stage's mean reward and mean completion length per step, as the paper's
        Figures 2 and 3 show R1-Zero's. A stage's reward is the weighted sum of its own rewards, so the stages'
        reward scales differ (reasoning RL adds language consistency)."""
        plt = pyplot()
        curves = [(label, points) for label, points in self.curves() if points]
        if plt is None or not curves:
            return None
        fig, (reward_ax, length_ax) = plt.subplots(1, 2, figsize=(11, 4))
        for label, points in curves:
            for ax, key in ((reward_ax, "reward"), (length_ax, "completions/mean_length")):
                xy = [(p["step"], p[key]) for p in points if p.get(key) is not None]
                ax.plot([x for x, _ in xy], [y for _, y in xy], marker="o", markersize=3, label=label)
        reward_ax.set(xlabel="GRPO step", ylabel="mean reward of the step's samples", title="reward")
        length_ax.set(xlabel="GRPO step", ylabel="tokens", title="mean completion length")
        reward_ax.legend(fontsize=7)
        fig.suptitle("Mini-R1: the RL stages per step (cf. DeepSeek-R1's Figures 2 and 3)")
        return self.save(plt, fig, "rl_curves.png")

    def trace(self) -> str | None:
        """`r1f show` of one released reasoning sample, then the models trained on its release."""
        from catalogs import cli as catalog_cli

        rows = self.sql("SELECT m.generation_id FROM release_members m JOIN prompts p USING (prompt_id) "
                        "WHERE m.release_name = 'mini-r1-mix' AND p.kind = 'reasoning' ORDER BY m.position LIMIT 1")
        if not rows:
            return None
        gid = rows[0][0]
        self.step(f"show {gid}")
        catalog_cli.show(gid, catalog=self.catalog.root)
        trained = self.sql("SELECT training_id, kind, base_model, output_dir FROM trainings "
                           "WHERE release_name = 'mini-r1-mix' ORDER BY started_at")
        for tid, kind, base, out in trained:
            console.print(f"trained on this release: {tid} ({kind}) {base} -> {out}")
        # The model that wrote the sample, back through the trainings that made it, to the pretrained base.
        model = self.sql("SELECT r.model FROM generation_meta g JOIN runs r USING (run_id) WHERE generation_id = ?",
                         [gid])[0][0]
        chain = []
        while model:
            row = self.sql("SELECT training_id, kind, base_model, coalesce(release_name, prompts_where) FROM trainings "
                           "WHERE output_dir = ? AND status = 'finished' ORDER BY finished_at DESC LIMIT 1", [model])
            if not row:
                chain.append(f"{Path(model).name} (pretrained from scratch on the world's raw text)")
                break
            tid, kind, base, data = row[0]
            chain.append(f"{Path(model).name} ({kind} {tid} on {data})")
            model = base
        console.print("model lineage: " + " <- ".join(chain))
        return gid
