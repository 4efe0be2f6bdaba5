"""Mini-R1, stage by stage, through the functions the `r1f` commands call.

Each stage writes its recipe to `OUT/recipes/` (the file a user would pass to the command), prints the
command, and calls the function behind it: `catalogs.ingest`, `r1f train sft|grpo` (training.sft /
training.grpo), `r1f eval` (training.evaluate), `r1f generate` (factory.generate), `r1f judge`,
`r1f filter`, `r1f release`, `r1f show`. Only the base models' pretraining (no catalog data, raw text)
is trl's SFTTrainer called directly, in r1f/mini/model.py.
"""
from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from rich.console import Console
from rich.table import Table

from r1f.mini.model import STUDENT, param_count, pretrain
from r1f.mini.world import WorldFiles, WorldSpec, write_world

if TYPE_CHECKING:
    from catalogs.store import Catalog

TEMPLATES = Path(__file__).resolve().parent / "templates"
console = Console()

TRAIN_SOURCE = "mini/train"
NR_SOURCE = "mini/chat"
HELDOUT = "mini-heldout"


@dataclass(frozen=True)
class MiniConfig:
    """Sizes of every stage. `full()` is `make demo`; `quick()` is the integration test's shortened path."""

    seed: int = 0
    world: WorldSpec = field(default_factory=WorldSpec)
    base_steps: int = 1000
    student_steps: int = 600
    eval_problems: int = 200
    eval_k: int = 2
    zero_steps: int = 80
    zero_seeds: tuple[int, ...] = (0, 1, 2)
    # R1-Zero's learning rate (and the GRPO-alone student's). At 2e-4 every variant tried fell (72% -> 53% with the
    # dialogue prompt in float32); at 5e-5 it holds. See r1_zero().
    zero_lr: float = 5e-5
    cold_prompts: int = 300
    cold_epochs: int = 3
    rl_steps: int = 30
    rs_prompts: int = 600
    distill_epochs: int = 4
    rs_samples: int = 4          # rejection sampling: most samples per prompt
    batch_prompts: int = 8       # GRPO prompts per step
    generations: int = 8         # GRPO group size
    # The student trained by GRPO alone gets a fixed budget of optimizer steps (as many as R1-Zero takes on the
    # base), never "what fits in the distillation's wall time": the table must not depend on the machine.
    student_grpo_steps: int = 80
    threads: int = 1             # torch threads: floating-point sums, so the numbers, depend on it

    @classmethod
    def full(cls, seed: int = 0, threads: int = 1) -> MiniConfig:
        return cls(seed=seed, world=WorldSpec(seed=seed), threads=threads)

    @classmethod
    def quick(cls, seed: int = 0, threads: int = 1) -> MiniConfig:
        return cls(seed=seed, world=WorldSpec(seed=seed, train=300, heldout=60, pretrain_docs=8000, curated=48),
                   base_steps=300, student_steps=150, eval_problems=60, eval_k=1, zero_steps=4, zero_seeds=(0,),
                   cold_prompts=60, cold_epochs=3, rl_steps=3, rs_prompts=240, rs_samples=8, distill_epochs=2,
                   batch_prompts=4, generations=4, student_grpo_steps=4, threads=threads)

    def key(self) -> str:
        """Everything that makes a run's artefacts: this config (the seed and thread count included) and the
        versions of the training stack. A folder holds the artefacts of one key only."""
        from importlib.metadata import version

        from catalogs.ids import content_hash

        stack = {name: version(name) for name in ("torch", "transformers", "trl")}
        return content_hash("mini-r1", asdict(self), stack)[:16]


def two_se(p1: float, p2: float, n: int) -> float:
    """Twice the standard error, in points, of the difference of two pass@1 estimates (percent), each the mean of
    `n` samples (problems x k) scored right or wrong: a gain larger than this is more than the eval's noise."""
    a, b = p1 / 100, p2 / 100
    return 200 * math.sqrt((a * (1 - a) + b * (1 - b)) / max(n, 1))


@dataclass
class Row:
    stage: str
    model: str
    params: int | None = None
    pass_at_1: float | None = None
    kept: int | None = None
    accept_rate: float | None = None
    seconds: float = 0.0


class Mini:
    """One Mini-R1 run in `out`: world files, models, recipes and the catalog."""

    def __init__(self, out: Path, cfg: MiniConfig, catalog: Catalog) -> None:
        self.out, self.cfg, self.catalog = out, cfg, catalog
        self.key = cfg.key()
        self.rows: list[Row] = []
        self.files: WorldFiles | None = None
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

    def recipe(self, name: str, data: dict[str, Any]) -> Path:
        path = self.out / "recipes" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        return path

    def model_dir(self, name: str) -> Path:
        return self.out / "models" / name

    def timed(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        return result, time.perf_counter() - t0

    def artefact_key(self, recipe: Path) -> str:
        """What makes a trained model: the run's key (config, seed, threads, stack versions) and its recipe, whose
        model path names its input model (itself keyed the same way) and whose release is frozen."""
        from catalogs.ids import content_hash

        return content_hash("mini-artefact", self.key, recipe.read_text())[:16]

    def finished(self, out: Path, recipe: Path) -> float | None:
        """Seconds a finished training into `out` took, if the catalog records one, its model is there and it was
        made by this key and recipe: a rerun of the demo in the same folder trains nothing twice."""
        rows = self.sql("SELECT epoch(finished_at - started_at) FROM trainings WHERE output_dir = ? AND "
                        "status = 'finished' ORDER BY finished_at DESC LIMIT 1", [str(out.resolve())])
        marker = out / ".mini-key"
        if rows and (out / "config.json").exists() and marker.exists() \
                and marker.read_text() == self.artefact_key(recipe):
            console.print(f"[dim]already trained: {out} (recorded in the catalog's trainings, key "
                          f"{marker.read_text()}); reusing it[/]")
            return float(rows[0][0])
        return None

    def made(self, out: Path, recipe: Path) -> None:
        (out / ".mini-key").write_text(self.artefact_key(recipe))

    def sql(self, query: str, params: list[Any] | None = None) -> list[tuple]:
        with self.catalog.reader() as con:
            return con.execute(query, params or []).fetchall()

    # ------------------------------------------------------------------------------------ 1. the world
    def world(self) -> WorldFiles:
        from catalogs.ingest import IngestOptions, ingest

        self.banner("1. the task world")
        files = write_world(self.out / "world", self.cfg.world)
        self.files = files
        console.print(f"seed {self.cfg.seed}: {self.cfg.world.train} train and {self.cfg.world.heldout} held-out "
                      f"arithmetic problems, {self.cfg.world.pretrain_docs} raw pretraining documents, "
                      f"non-reasoning prompts with fixed answers -> {files.train.parent}")
        self.step(f"ingest {files.train} --source {TRAIN_SOURCE}")
        r = ingest(self.catalog, files.train, IngestOptions(source=TRAIN_SOURCE))
        console.print(f"prompts added: {r.prompts_added} (already present: {r.prompts_already_present})")
        self.step(f"ingest {files.non_reasoning} --generations --model mini-v3-sft-data --source {NR_SOURCE}")
        r = ingest(self.catalog, files.non_reasoning,
                   IngestOptions(source=NR_SOURCE, generations=True, model="mini-v3-sft-data"))
        console.print(f"non-reasoning prompts added: {r.prompts_added}, responses added: {r.generations_added}")
        self.nr_run = self.imported_run("mini-v3-sft-data")
        return files

    # ------------------------------------------------------------------------------------ evaluation
    def evaluate(self, model: Path, template: str, label: str) -> float:
        """`r1f eval` on the held-out problems, with the transformers backend (a tiny model answers them all
        sooner than vLLM starts); returns pass@1 in percent."""
        from training.evaluate import run_eval

        assert self.files is not None
        recipe = self.recipe(f"eval-{label}.yaml", {
            "name": f"eval-{label}",
            "backend": {"name": "transformers", "model": str(model)},
            "benchmarks": [{"name": HELDOUT, "file": str(self.files.heldout), "limit": self.cfg.eval_problems}],
            "template": {"file": str(TEMPLATES / template)},
            "sampling": {"temperature": 0.6, "top_p": 0.95, "max_tokens": 64, "seed": self.cfg.seed},
            "k": self.cfg.eval_k, "judges": ["math_accuracy"]})
        self.step(f"eval {recipe}")
        result = run_eval(self.catalog, recipe)
        score = result["scores"][0]["pass_at_1"] if result["scores"] else 0.0
        console.print(f"[bold]{label}[/]: held-out pass@1 = [bold]{score:.1f}%[/] "
                      f"({self.cfg.eval_problems} problems x k={self.cfg.eval_k}, T 0.6)")
        return float(score)

    # ------------------------------------------------------------------------------------ 2. base models
    def base(self, name: str, steps: int, size: Any, template: str = "r1_zero_mini.yaml") -> Path:
        assert self.files is not None
        self.banner(f"2. {name}: a tiny Qwen2 trained from scratch on raw worked solutions (no chat format)")
        out = self.model_dir(name)
        info, secs = self.timed(pretrain, out, self.files.pretrain, size, steps=steps, seed=self.cfg.seed)
        params = param_count(out)
        console.print(f"{name}: {params:,} parameters, {steps} steps, loss {info['first_loss']:.2f} -> "
                      f"{info['final_loss']:.2f}")
        score = self.evaluate(out, template, name)
        self.rows.append(Row(f"pretrain ({name})", name, params, score, seconds=secs))
        return out

    # ------------------------------------------------------------------------------------ GRPO
    def grpo(self, name: str, model: Path, template: str, rewards: list[Any], steps: int, seed: int,
             lr: float = 2e-4, **trl: Any) -> tuple[Path, float, dict[str, Any]]:
        from training.grpo import run_grpo

        out = self.model_dir(name)
        recipe = self.recipe(f"grpo-{name}.yaml", {
            "name": name, "model": str(model), "output_dir": str(out),
            "prompts": {"where": f"source = '{TRAIN_SOURCE}'"},
            "template": {"file": str(TEMPLATES / template)},
            "rewards": rewards,
            "trl": {"max_steps": steps, "learning_rate": lr, "beta": 0.0, "num_generations": self.cfg.generations,
                    "per_device_train_batch_size": self.cfg.batch_prompts * self.cfg.generations,
                    "max_completion_length": 48, "temperature": 0.7, "logging_steps": max(1, steps // 8),
                    "save_strategy": "no", "report_to": "none", "seed": seed, "disable_tqdm": True,
                    "lr_scheduler_type": "constant", "warmup_steps": 0, **trl}})
        self.step(f"train grpo {recipe}")
        done = self.finished(out, recipe)
        if done is not None:
            return out, done, {"log_history": []}
        result, secs = self.timed(run_grpo, self.catalog, recipe)
        self.made(out, recipe)
        hist = [e for e in result["log_history"] if "reward" in e]
        if hist:
            console.print(f"reward {hist[0]['reward']:.2f} (first step) -> {hist[-1]['reward']:.2f} (last step); "
                          + ", ".join(f"{k} {hist[-1][k]:.2f}" for k in hist[-1] if k.startswith("rewards/")
                                      and k.endswith("/mean")))
        return out, secs, result

    # ------------------------------------------------------------------------------------ 3. R1-Zero
    def r1_zero(self, base: Path, base_score: float) -> Path:
        self.banner("3. R1-Zero: GRPO straight from the base, rule rewards only (accuracy + format)")
        rewards = ["math_accuracy", {"judge": "format", "params": {"template": "r1_zero"}}]
        first: Path | None = None
        scores = []
        for seed in self.cfg.zero_seeds:
            # Sampled as the eval samples (T 0.6, top-p 0.95); T 1.0 gave no more (67% from 72%, one seed).
            out, secs, _ = self.grpo(f"r1-zero-s{seed}", base, "r1_zero_mini.yaml", rewards, self.cfg.zero_steps,
                                     seed, lr=self.cfg.zero_lr, temperature=0.6, top_p=0.95)
            score = self.evaluate(out, "r1_zero_mini.yaml", f"r1-zero-s{seed}")
            scores.append(score)
            self.rows.append(Row(f"R1-Zero GRPO (seed {seed})", out.name, param_count(out), score, seconds=secs))
            first = first or out
        gains = [s - base_score for s in scores]
        self.zero_gains = gains
        self.zero_noise = [self.noise(base_score, s) for s in scores]
        spread = max(scores) - min(scores) if len(scores) > 1 else float("nan")
        console.print(f"[bold]R1-Zero: base {base_score:.1f}% -> {', '.join(f'{s:.1f}%' for s in scores)} "
                      f"(seeds {list(self.cfg.zero_seeds)}); gains {self.gains(gains, self.zero_noise)} points, "
                      f"seed-to-seed spread {spread:.1f} points[/]")
        assert first is not None
        return first

    def noise(self, p1: float, p2: float) -> float:
        """Twice the standard error of a difference of two of this run's held-out pass@1 scores."""
        return two_se(p1, p2, self.cfg.eval_problems * self.cfg.eval_k)

    @staticmethod
    def gains(gains: list[float], noise: list[float]) -> str:
        """`+6.2 (2SE 5.1)` per gain, with `*` where the gain exceeds its noise."""
        return ", ".join(f"{g:+.1f} (2SE {n:.1f}){'*' if g > n else ''}" for g, n in zip(gains, noise))

    # ------------------------------------------------------------------------------------ factory helpers
    def generate(self, name: str, model: Path, template: dict[str, Any], where: str, limit: int,
                 judges: list[Any], backend: Any = None, per_prompt: int = 1, max_samples: int = 2) -> dict:
        from factory.generate import generate_from_recipe

        recipe = self.recipe(f"generate-{name}.yaml", {
            "name": name,
            "prompts": {"where": where, "limit": limit},
            "backend": {"name": "vllm", "model": str(model), "max_model_len": 256, "kv_cache_gb": 1,
                        "gpu_memory_utilization": 0.3, "enforce_eager": True},
            "template": template,
            "sampling": {"temperature": 0.7, "top_p": 0.95, "max_tokens": 64, "seed": self.cfg.seed},
            "samples_per_prompt": per_prompt,
            "budget": {"max_samples": max_samples, "round_size": 1, "retry_samples": 1},
            "judges": judges})
        self.step(f"generate {recipe}")
        return generate_from_recipe(recipe, self.catalog, backend=backend, progress=False)

    def run_of(self, name: str, model: Path) -> str:
        rows = self.sql("SELECT run_id FROM runs WHERE model = ? AND kind IS DISTINCT FROM 'eval' "
                        "ORDER BY created_at DESC", [str(model)])
        if not rows:
            raise RuntimeError(f"{name}: no run recorded for {model}")
        return rows[0][0]

    def imported_run(self, model: str) -> str:
        """The run holding an import's generations. A re-import adds nothing and may report another run id, so
        the run is read from where the generations are: a release's selection must name the same run each time."""
        return self.sql("SELECT g.run_id FROM generation_meta g JOIN runs r USING (run_id) WHERE r.model = ? "
                        "GROUP BY g.run_id ORDER BY count(*) DESC, g.run_id LIMIT 1", [model])[0][0]

    def filters(self, name: str, run_ids: list[str]) -> dict:
        from filters.run import FilterRecipe, filter_catalog

        assert self.files is not None
        runs = ", ".join(f"'{r}'" for r in run_ids)
        data = {"where": f"run_id IN ({runs})", "workers": 1, "filters": [
            {"name": "hygiene"},
            {"name": "language_mixing", "where": "kind = 'reasoning'"},
            {"name": "long_paragraphs", "where": "kind = 'reasoning'"},
            {"name": "code_blocks", "where": "kind = 'reasoning'"},
            {"name": "dedup"}]}
        recipe = self.recipe(f"filters-{name}.yaml", data)
        self.step(f"filter {recipe}")
        summary = filter_catalog(self.catalog, FilterRecipe(**data))
        console.print(", ".join(f"{k}: {v['passed']}/{v['total']} pass" for k, v in summary.items()))
        return summary

    def release(self, name: str, data: dict[str, Any]) -> dict:
        from releases.release import ReleaseRecipe, create_release

        recipe = self.recipe(f"release-{name}.yaml", data)
        self.step(f"release {name} --recipe {recipe}")
        if self.sql("SELECT 1 FROM releases WHERE name = ?", [name]):
            # A release is frozen; its manifest also counts what the catalog held outside it then, so after the
            # later stages have added generations the same recipe no longer gives the same bytes. Reuse it.
            from releases.release import get_manifest

            manifest = get_manifest(self.catalog, name)
            console.print(f"[dim]release {name} already exists (releases are frozen); reusing it[/]")
        else:
            manifest = create_release(self.catalog, name, recipe=ReleaseRecipe(**data))
        console.print(f"release {name}: {manifest['members']} members {manifest['by_kind']}")
        return manifest

    def accept(self, run_id: str) -> tuple[int, int]:
        """(generations, passing every judge) of a run."""
        row = self.sql("""SELECT count(*), count(*) FILTER (WHERE ok) FROM (
            SELECT g.generation_id, bool_and(v.passed) AS ok FROM generation_meta g
            LEFT JOIN verdicts v USING (generation_id) WHERE g.run_id = ? GROUP BY ALL)""", [run_id])[0]
        return int(row[0]), int(row[1] or 0)

    def sft(self, name: str, model: Path, release: str, epochs: int, lr: float = 1e-3) -> tuple[Path, float]:
        from training.sft import run_sft

        out = self.model_dir(name)
        recipe = self.recipe(f"sft-{name}.yaml", {
            "name": name, "model": str(model), "release": release, "output_dir": str(out),
            "trl": {"num_train_epochs": epochs, "learning_rate": lr, "per_device_train_batch_size": 16,
                    "max_length": 128, "logging_steps": 5, "save_strategy": "no", "report_to": "none",
                    "seed": self.cfg.seed, "disable_tqdm": True, "lr_scheduler_type": "cosine",
                    "warmup_steps": 2}})
        self.step(f"train sft {recipe}")
        done = self.finished(out, recipe)
        if done is not None:
            return out, done
        _, secs = self.timed(run_sft, self.catalog, recipe)
        self.made(out, recipe)
        return out, secs

    # ------------------------------------------------------------------------------------ 4. cold start
    def cold_start(self, zero: Path, base: Path) -> Path:
        from backends.transformers_backend import TransformersBackend

        assert self.files is not None
        self.banner("4. cold start: readable traces from the R1-Zero model (few-shot), judged, filtered; "
                    "SFT of the base on them")
        t0 = time.perf_counter()
        backend = TransformersBackend(zero)
        try:
            self.generate("cold-start", zero, {"file": str(TEMPLATES / "cold_start_mini.yaml"),
                                               "examples_file": str(self.files.examples)},
                          f"source = '{TRAIN_SOURCE}'", self.cfg.cold_prompts,
                          ["math_accuracy", {"name": "format", "params": {"template": "think"}}], backend=backend)
        finally:
            backend.close()
        run = self.run_of("cold start", zero)
        curated = self.curated()
        self.filters("cold-start", [run, curated])
        manifest = self.release("mini-cold-start", {"where": f"run_id IN ('{run}', '{curated}')", "per_prompt": 1,
                                                    "reasoning": None, "non_reasoning": None})
        collect_secs = time.perf_counter() - t0
        n, ok = self.accept(run)
        self.rows.append(Row("cold-start collection", zero.name, None, None, manifest["members"],
                             ok / n if n else 0.0, collect_secs))
        out, secs = self.sft("cold-start-sft", base, "mini-cold-start", self.cfg.cold_epochs)
        score = self.evaluate(out, "chat_mini.yaml", "cold-start-sft")
        self.rows.append(Row("cold-start SFT of the base", out.name, param_count(out), score, seconds=secs))
        return out

    def curated(self) -> str:
        """Hand-cleaned readable traces (the paper's human post-processing), imported and judged like the rest."""
        from catalogs.ingest import IngestOptions, ingest
        from judges.run import JudgeRecipe, judge_catalog

        assert self.files is not None
        self.step(f"ingest {self.files.curated} --generations --model mini-annotators --source {TRAIN_SOURCE}")
        r = ingest(self.catalog, self.files.curated,
                   IngestOptions(source=TRAIN_SOURCE, generations=True, model="mini-annotators"))
        console.print(f"responses added: {r.generations_added} (already present: {r.generations_already_present})")
        run = self.imported_run("mini-annotators")
        data = {"judges": [{"name": "math_accuracy", "where": f"run_id = '{run}'"},
                           {"name": "format", "where": f"run_id = '{run}'", "params": {"template": "think"}}],
                "workers": 1}
        recipe = self.recipe("judge-curated.yaml", data)
        self.step(f"judge {recipe}")
        counts = judge_catalog(self.catalog, JudgeRecipe(**data))
        console.print(", ".join(f"{k}: {v['passed']}/{v['judged']} pass" for k, v in counts.items()))
        return run

    # ------------------------------------------------------------------------------------ 5. reasoning RL
    def reasoning_rl(self, cold: Path) -> Path:
        self.banner("5. reasoning RL: GRPO on the cold-started model, language-consistency reward added")
        rewards = ["math_accuracy", "format", {"judge": "language_consistency", "weight": 0.5}]
        out, secs, _ = self.grpo("reasoning-rl", cold, "chat_mini.yaml", rewards, self.cfg.rl_steps, self.cfg.seed,
                                 lr=1e-4, temperature=1.0)
        score = self.evaluate(out, "chat_mini.yaml", "reasoning-rl")
        self.rows.append(Row("reasoning RL (GRPO)", out.name, param_count(out), score, seconds=secs))
        return out

    # ------------------------------------------------------------------------------------ 6. rejection sampling
    def rejection_sampling(self, rl: Path) -> dict:
        from judges.run import JudgeRecipe, judge_catalog

        self.banner("6. rejection sampling with vLLM and the judges; filters; the 3:1 release")
        t0 = time.perf_counter()
        self.generate("rejection-sampling", rl, {"file": str(TEMPLATES / "chat_mini.yaml")},
                      f"source = '{TRAIN_SOURCE}'", self.cfg.rs_prompts,
                      ["math_accuracy", "format"], backend=None, per_prompt=1, max_samples=self.cfg.rs_samples)
        run = self.run_of("rejection sampling", rl)
        self.rs_run = run
        data = {"judges": [{"name": "language_consistency", "where": f"run_id = '{run}'"}], "workers": 1}
        recipe = self.recipe("judge-rs.yaml", data)
        self.step(f"judge {recipe}")
        counts = judge_catalog(self.catalog, JudgeRecipe(**data))
        console.print(", ".join(f"{k}: {v['passed']}/{v['judged']} pass" for k, v in counts.items()))
        self.filters("rs", [run, self.nr_run])
        manifest = self.release("mini-r1-mix", {
            "where": f"run_id IN ('{run}', '{self.nr_run}')", "per_prompt": 1, "prefer": "shortest",
            "reasoning": None, "non_reasoning": None, "reasoning_share": 0.75, "seed": self.cfg.seed})
        n, ok = self.accept(run)
        self.rows.append(Row("rejection sampling + 3:1 mix", rl.name, None, None, manifest["members"],
                             ok / n if n else 0.0, time.perf_counter() - t0))
        return manifest

    # ------------------------------------------------------------------------------------ 7. distillation
    def distill(self) -> None:
        self.banner("7. distillation: SFT a smaller student on the release; vs the same student by GRPO alone")
        student = self.base("student-base", self.cfg.student_steps, STUDENT)
        out, secs = self.sft("student-distilled", student, "mini-r1-mix", self.cfg.distill_epochs)
        score = self.evaluate(out, "chat_mini.yaml", "student-distilled")
        self.rows.append(Row("distillation (SFT on the release)", out.name, param_count(out), score, seconds=secs))
        # A fixed budget, the same on every machine: as many optimizer steps as R1-Zero takes on the base, each on
        # batch_prompts x generations samples, more samples than the distillation's epochs show the student.
        steps = self.cfg.student_grpo_steps
        rewards = ["math_accuracy", {"judge": "format", "params": {"template": "r1_zero"}}]
        gout, gsecs, _ = self.grpo("student-grpo", student, "r1_zero_mini.yaml", rewards, steps, self.cfg.seed,
                                   lr=self.cfg.zero_lr, temperature=0.6, top_p=0.95)
        gscore = self.evaluate(gout, "r1_zero_mini.yaml", "student-grpo")
        self.rows.append(Row(f"student by GRPO alone ({steps} steps)", gout.name, param_count(gout), gscore,
                             seconds=gsecs))

    # ------------------------------------------------------------------------------------ 8. the end
    def summary(self) -> Table:
        table = Table(title="Mini-R1 summary", width=max(console.width, 118))
        for col in ("stage", "model", "params", "held-out pass@1", "samples kept", "accept rate", "wall time"):
            table.add_column(col, justify="left" if col in ("stage", "model") else "right")
        for r in self.rows:
            table.add_row(r.stage, r.model, f"{r.params:,}" if r.params else "",
                          f"{r.pass_at_1:.1f}%" if r.pass_at_1 is not None else "",
                          str(r.kept) if r.kept is not None else "",
                          f"{100 * r.accept_rate:.0f}%" if r.accept_rate is not None else "", f"{r.seconds:.0f}s")
        return table

    def write_results(self) -> Path:
        path = self.out / "summary.json"
        path.write_text(json.dumps({"config": {"seed": self.cfg.seed, "threads": self.cfg.threads, "key": self.key},
                                    "rows": [r.__dict__ for r in self.rows],
                                    "zero_gains": getattr(self, "zero_gains", []),
                                    "zero_gains_2se": getattr(self, "zero_noise", []),
                                    "total_seconds": time.perf_counter() - self.started}, indent=1))
        self.figure()
        return path

    def figure(self) -> Path | None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        scored = [(r.model, r.pass_at_1) for r in self.rows if r.pass_at_1 is not None][::-1]
        fig, ax = plt.subplots(figsize=(8, 3.6))
        ax.barh([m for m, _ in scored], [p for _, p in scored], color="#4c72b0")
        for i, (_, p) in enumerate(scored):
            ax.text(p + 0.5, i, f"{p:.1f}%", va="center", fontsize=8)
        ax.set_xlabel("held-out pass@1 (%)")
        ax.set_xlim(0, 105)
        ax.set_title("Mini-R1: held-out pass@1 per stage")
        fig.tight_layout()
        path = self.out / "pass_at_1.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        return path

    def report(self) -> Path:
        """`r1f report` of the released mix: the HTML file with the plots (lengths, accept rates, drops, ...)."""
        from releases import cli as releases_cli

        path = self.out / "report-mini-r1-mix.html"
        self.step(f"report mini-r1-mix --out {path}")
        releases_cli.report("mini-r1-mix", out=path, catalog=self.catalog.root)
        return path

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
