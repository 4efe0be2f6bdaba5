"""The pipeline file: named stages in order, each with its own recipe (or its arguments inline), checked whole
before anything runs. Errors name the file and line."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from catalogs.errors import RecipeError
from catalogs.recipes import Strict, key_line, load_model, read_yaml, resolve_path

STAGE_KINDS = ("ingest", "generate", "judge", "filter", "review", "release", "export", "publish", "sft", "grpo",
               "reward", "eval", "report", "rewrite")
# Kinds that read a recipe file of their own (a release's is optional); the others take `args:` inline.
NEEDS_RECIPE = {"generate", "judge", "filter", "sft", "grpo", "reward", "eval", "rewrite"}
# Kinds that act on a release named by the stage's `release:` (review: optional).
NEEDS_RELEASE = {"export", "publish", "report"}
# Kinds `--engine ray` goes to.
ENGINE_KINDS = {"generate", "judge", "filter", "eval"}
# Kinds that may compute with torch in this process (training, a transformers backend, a reward model): the ones
# the pipeline's `torch:` settings are an input of.
TORCH_KINDS = {"generate", "judge", "sft", "grpo", "reward", "eval"}


class IngestArgs(Strict):
    source: str  # a file or folder (relative to the pipeline file), or hf://datasets/ORG/NAME
    name: str | None = None  # the source's name in the catalog (default: the file's or dataset's name)
    generations: bool = False
    model: str | None = None
    rename: dict[str, str] = Field(default_factory=dict)
    kind: str | None = None
    domain: str | None = None
    language: str | None = None
    split: str | None = None
    config: str | None = None
    revision: str | None = None
    max_record_mb: float = 16.0
    choices: list[str] = Field(default_factory=list)
    shuffle_choices: bool = False


class ReviewArgs(Strict):
    where: str | None = None
    disagree: bool = False
    sample: int | None = None
    seed: int = 0


class ReleaseArgs(Strict):
    where: str | None = None


class ExportArgs(Strict):
    out: str
    format: Literal["parquet", "jsonl", "hf"] = "parquet"
    style: Literal["messages", "prompt_completion", "hub"] = "messages"


class PublishArgs(Strict):
    repo_id: str
    private: bool = False
    revision: str | None = None
    license: str = "unknown"


class ReportArgs(Strict):
    out: str | None = None


class NoArgs(Strict):
    pass


ARGS: dict[str, type[Strict]] = {"ingest": IngestArgs, "review": ReviewArgs, "release": ReleaseArgs,
                                 "export": ExportArgs, "publish": PublishArgs, "report": ReportArgs}


class Stage(Strict):
    name: str
    kind: Literal["ingest", "generate", "judge", "filter", "review", "release", "export", "publish", "sft", "grpo",
                  "reward", "eval", "report", "rewrite"]
    # The stage's own recipe, relative to this file.
    recipe: str | None = None
    # A release stage: the release it makes; export, publish, report (and optionally review): the one they read.
    release: str | None = None
    # What a command takes as arguments rather than a recipe (ingest, review, release, export, publish, report).
    args: dict[str, Any] = Field(default_factory=dict)
    # A lane: the stages of one lane run in order, in a second process, beside the stages outside any lane. A
    # lane starts once every stage outside a lane listed before its first stage is done; a stage outside a lane
    # never reads what a lane makes (a model, a release), and the run ends when every lane has. See `stage_deps`.
    lane: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$")


def stage_deps(stages: list[Stage]) -> list[set[int]]:
    """The stages (by index) each stage is made from: for a stage outside any lane, every earlier stage outside a
    lane; for a stage in a lane, the stages outside a lane listed before the lane's first stage, and the lane's
    earlier stages. Without lanes that is every earlier stage. Other lanes' stages are never a stage's input."""
    first: dict[str, int] = {}
    for i, s in enumerate(stages):
        if s.lane is not None:
            first.setdefault(s.lane, i)
    deps: list[set[int]] = []
    for i, s in enumerate(stages):
        fork = i if s.lane is None else first[s.lane]
        deps.append({j for j in range(i) if (stages[j].lane is None and j < fork) or
                     (s.lane is not None and stages[j].lane == s.lane)})
    return deps


class TorchSettings(Strict):
    """How torch computes in the process that runs the stages. A fixed thread count fixes how floating-point sums
    are split, so with deterministic algorithms the same seed gives the same numbers whatever the machine's load."""

    threads: int | None = Field(default=None, ge=1)  # torch.set_num_threads
    deterministic: bool = False  # torch.use_deterministic_algorithms(True)


class PipelineRecipe(Strict):
    """A pipeline file (`recipes/r1.yaml`): the stages in the order they run."""

    name: str | None = None
    description: str | None = None
    # Set before the first stage runs; an input of every stage in TORCH_KINDS (a change runs them again).
    torch: TorchSettings | None = None
    # Releases its stages read that no stage makes: made before the pipeline runs (e.g. the cold-start set).
    releases: list[str] = Field(default_factory=list)
    stages: list[Stage]
    source_path: Path | None = Field(default=None, exclude=True)

    def resolve(self, path: str) -> Path:
        return resolve_path(path, self.source_path)

    @property
    def where(self) -> str:
        return str(self.source_path or "<pipeline>")


def check_pipeline(path: str | Path) -> list[tuple[Stage, Any]]:
    """Validate the whole pipeline before anything runs: every stage's kind, name, recipe (by its own loader: no
    weights, no catalog), inline args, and the order (a stage's model that is a local output must be an earlier
    stage's output_dir; a release it reads must be made by an earlier stage). Returns (stage, its parsed recipe or
    args) in order. Every error names the file and line."""
    path = Path(path)
    pipe = load_model(path, PipelineRecipe, what="pipeline")
    pipe.source_path = path
    _, text = read_yaml(path, "pipeline")

    def at(i: int, *key: str) -> str:
        line = key_line(text, ("stages", i, *key))
        return f"{path}:{line}" if line else str(path)

    seen: dict[str, int] = {}
    for i, stage in enumerate(pipe.stages):
        if stage.name in seen:
            raise RecipeError(f"{at(i, 'name')}: stages[{i}].name: two stages are named {stage.name!r} (the other is "
                              f"stages[{seen[stage.name]}]); give each stage its own name")
        seen[stage.name] = i
    makes = {s.release: i for i, s in enumerate(pipe.stages) if s.kind == "release" and s.release}
    deps = stage_deps(pipe.stages)
    outputs: dict[str, int] = {}  # a training stage's output_dir -> the stage's index

    def made_by(i: int, j: int, what: str, key: str) -> None:
        """Stage i reads what stage j makes: j must be one of i's inputs (not in another lane, nor in a lane when
        i is outside any)."""
        if j in deps[i]:
            return
        mine, theirs = pipe.stages[i].lane, pipe.stages[j].lane
        where = f"in lane {theirs!r}" if theirs else "outside any lane"
        raise RecipeError(f"{at(i, key)}: stages[{i}] ({'lane ' + repr(mine) if mine else 'outside any lane'}) "
                          f"reads {what}, made by stage {pipe.stages[j].name!r} {where}, which runs beside it, not "
                          f"before it; put both in the same lane, or the maker outside any lane before the lane's "
                          f"first stage")
    out: list[tuple[Stage, Any]] = []

    def needs_release(i: int, rel: str | None, key: str) -> None:
        if rel is None:
            return
        if rel in pipe.releases and rel not in makes:
            return
        if rel not in makes:
            raise RecipeError(f"{at(i, key)}: stages[{i}]: release {rel!r} is made by no stage of this pipeline; add "
                              f"a release stage with `release: {rel}` before it, or, if it is made beforehand, "
                              f"list it under the pipeline's `releases:`")
        if makes[rel] > i:
            raise RecipeError(f"{at(i, key)}: stages[{i}]: release {rel!r} is made by a later stage "
                              f"({pipe.stages[makes[rel]].name}); run that stage first")
        made_by(i, makes[rel], f"release {rel!r}", key)

    for i, stage in enumerate(pipe.stages):
        file = pipe.resolve(stage.recipe) if stage.recipe else None
        if stage.recipe and (file is None or not file.is_file()):
            raise RecipeError(f"{at(i, 'recipe')}: stages[{i}].recipe: {stage.recipe!r} does not exist; give the "
                              f"stage's recipe file (relative to {path.parent})")
        if stage.kind in NEEDS_RECIPE and file is None:
            raise RecipeError(f"{at(i)}: stages[{i}] ({stage.kind}) needs `recipe: FILE`, its own recipe")
        if stage.kind not in NEEDS_RECIPE and stage.kind != "release" and stage.recipe:
            raise RecipeError(f"{at(i, 'recipe')}: stages[{i}] ({stage.kind}) takes no recipe; give its arguments "
                              f"under `args:`")
        if stage.args and stage.kind not in ARGS:
            raise RecipeError(f"{at(i, 'args')}: stages[{i}] ({stage.kind}) takes no `args:`; its recipe says it all")
        if stage.kind == "release" and not stage.release:
            raise RecipeError(f"{at(i)}: stages[{i}] (release) needs `release: NAME`, the release it makes")
        if stage.kind == "review" and stage.lane is not None:
            raise RecipeError(f"{at(i, 'lane')}: stages[{i}] (review) cannot be in a lane: a review gate stops the "
                              f"run until people are done; leave `lane:` out")
        if stage.kind in NEEDS_RELEASE and not stage.release:
            raise RecipeError(f"{at(i)}: stages[{i}] ({stage.kind}) needs `release: NAME`, the release it reads")
        if stage.kind != "release":
            needs_release(i, stage.release, "release")
        args: Any = ARGS.get(stage.kind, NoArgs)
        try:
            parsed_args = args.model_validate(stage.args)
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(k) for k in err["loc"])
            allowed = ", ".join(args.model_fields) or "none"
            raise RecipeError(f"{at(i, 'args', *map(str, err['loc']))}: stages[{i}].args.{key}: {err['msg']}; the "
                              f"args of a {stage.kind} stage are: {allowed}") from None
        where = f"{at(i, 'recipe')}: stages[{i}].recipe"
        r: Any = parsed_args
        if stage.kind in ("sft", "grpo", "reward", "eval"):
            # Imported only for a pipeline that trains or evaluates: the training recipes import trl.
            from training.recipe import EvalRecipe, GRPORecipe, RewardRecipe, SFTRecipe
            from training.recipe import load_recipe as load_training
        if stage.kind in ("sft", "grpo", "reward"):
            trainers = {"sft": SFTRecipe, "grpo": GRPORecipe, "reward": RewardRecipe}
            r = load_training(file, trainers[stage.kind])  # type: ignore[arg-type]
            local = r.model.startswith(("runs/", "./", "../", "/")) and not Path(r.model).exists()
            if local and r.model not in outputs:
                raise RecipeError(f"{where}: model {r.model!r} is no earlier stage's output_dir; order the stages "
                                  f"so the one that writes it runs first")
            if r.model in outputs:
                made_by(i, outputs[r.model], f"model {r.model!r}", "recipe")
            if stage.kind != "reward":  # a reward model trains on a pairs file, not a release
                needs_release(i, r.release if stage.kind == "sft" else r.prompts.release, "recipe")
            outputs[r.output_dir] = i
        elif stage.kind == "eval":
            r = load_training(file, EvalRecipe)  # type: ignore[arg-type]
            if r.backend.model in outputs:
                made_by(i, outputs[r.backend.model], f"model {r.backend.model!r}", "recipe")
        elif stage.kind == "generate":
            from factory.recipe import load_recipe as load_generate

            r = load_generate(file)  # type: ignore[arg-type]
            model = r.backend.model
            if model.startswith("runs/") and model not in outputs:
                raise RecipeError(f"{where}: backend.model {model!r} is no earlier stage's output_dir")
            if model in outputs:
                made_by(i, outputs[model], f"model {model!r}", "recipe")
        elif stage.kind == "judge":
            from judges.run import JudgeRecipe

            r = load_model(file, JudgeRecipe)  # type: ignore[arg-type]
        elif stage.kind == "filter":
            from filters.run import FilterRecipe

            r = load_model(file, FilterRecipe)  # type: ignore[arg-type]
        elif stage.kind == "rewrite":
            from factory.rewrite import load_rewrite_recipe

            r = load_rewrite_recipe(file)  # type: ignore[arg-type]
        elif stage.kind == "release" and file is not None:
            from releases.release import ReleaseRecipe

            r = (load_model(file, ReleaseRecipe), parsed_args)
        out.append((stage, r))
    return out


def load_pipeline(path: str | Path) -> PipelineRecipe:
    """The parsed pipeline file (after `check_pipeline` has accepted it)."""
    pipe = load_model(Path(path), PipelineRecipe, what="pipeline")
    pipe.source_path = Path(path)
    return pipe
