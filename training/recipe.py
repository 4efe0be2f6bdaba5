"""Training and eval recipes: YAML files validated by pydantic before any weight loads.

The trainer settings are trl's own: a recipe's `trl:` block is passed to `trl.SFTConfig`,
`trl.GRPOConfig` or `trl.RewardConfig` as is. Its allowed keys are read from those dataclasses (never
copied by hand), so an unknown key is an error naming the file, the line and the key, and the values are
checked by constructing the config itself.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, create_model, field_validator, model_validator

from backends.config import BackendConfig
from catalogs.errors import RecipeError
from catalogs.recipes import Strict, load_model, recipe_file_of, resolve_path, validate_nested
from factory.recipe import SamplingConfig, TemplateConfig

# What r1-factory sets when a recipe does not: the paper's two epochs, loss on the assistant turn only.
SFT_DEFAULTS: dict[str, Any] = {"num_train_epochs": 2, "assistant_only_loss": True, "logging_steps": 10,
                                "save_strategy": "steps", "save_steps": 500, "report_to": "auto"}
GRPO_DEFAULTS: dict[str, Any] = {"logging_steps": 1, "report_to": "auto", "log_completions": False}
REWARD_DEFAULTS: dict[str, Any] = {"logging_steps": 10, "report_to": "auto"}
DEFAULTS: dict[str, dict[str, Any]] = {"sft": SFT_DEFAULTS, "grpo": GRPO_DEFAULTS, "reward": REWARD_DEFAULTS}
# The trainers r1-factory runs, by the `kind` of their recipes and `trainings` rows.
TrainerKind = Literal["sft", "grpo", "reward"]
# Keys r1-factory sets itself from other recipe fields; giving them in `trl:` is an error naming the field.
OWNED_KEYS = {"output_dir": "output_dir"}


def _config_class(kind: str) -> type:
    from trl import GRPOConfig, RewardConfig, SFTConfig

    return {"sft": SFTConfig, "grpo": GRPOConfig, "reward": RewardConfig}[kind]


@functools.cache
def trl_args_model(kind: TrainerKind) -> type[Strict]:
    """A strict pydantic model whose keys are exactly the init fields of trl's config class.

    Values stay `Any`: trl's own constructor checks them (in `build_config`), so there is one truth.
    """
    cls = _config_class(kind)
    fields = {f.name: (Any, None) for f in dataclasses.fields(cls) if f.init and f.name not in OWNED_KEYS}
    return create_model(f"{cls.__name__}Keys", __base__=Strict, **fields)  # type: ignore[call-overload]


def _report_to() -> list[str]:
    """TensorBoard or W&B when installed (and W&B only when configured); nothing requires them."""
    import importlib.util

    out = []
    if importlib.util.find_spec("tensorboard") is not None:
        out.append("tensorboard")
    if importlib.util.find_spec("wandb") is not None and os.environ.get("WANDB_API_KEY"):
        out.append("wandb")
    return out or ["none"]


def _has_cuda() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def build_config(kind: TrainerKind, trl_args: dict[str, Any], output_dir: str, *,
                 where: str = "<recipe>", for_validation: bool = False) -> Any:
    """trl's config from the recipe's `trl:` block plus r1-factory's defaults; errors name the key.

    `for_validation` on a machine without a GPU checks a GPU recipe here: `use_cpu` is set (trl refuses
    bf16 on the CPU otherwise) and a DeepSpeed file is checked for existence rather than loaded.
    """
    cls = _config_class(kind)
    args = dict(DEFAULTS[kind])
    args.update(trl_args)
    if args.get("report_to") == "auto":
        args["report_to"] = _report_to()
    if not _has_cuda() and kind == "grpo":
        args.setdefault("use_vllm", False)  # vLLM's CPU build cannot sync trl's weights (see README)
        # trl turns bf16 on by default, and on the CPU accelerate then runs the policy's forward pass under bf16
        # autocast: the log-probabilities the policy gradient follows carry bf16's 3-digit precision. In Mini-R1
        # that alone took R1-Zero from 72% to 32% held-out pass@1 where float32 gave 53% (DESIGN.md).
        args.setdefault("bf16", False)
    if not _has_cuda() and kind == "reward":
        args.setdefault("bf16", False)  # as for GRPO: trl's bf16 default would run the CPU's forward pass in bf16
    if not _has_cuda():
        args.setdefault("use_cpu", True)
    ds = args.get("deepspeed")
    if isinstance(ds, str) and not Path(ds).is_file():
        raise RecipeError(f"{where}: trl.deepspeed: DeepSpeed config {ds!r} does not exist; give the path of "
                          f"a JSON file (see recipes/accelerate/) or remove the key")
    if for_validation:
        args.pop("deepspeed", None)  # loading it imports deepspeed, which a CPU machine need not have
        if not _has_cuda():
            args["use_cpu"] = True
            if kind == "grpo":
                args["use_vllm"] = False
    try:
        return cls(output_dir=output_dir, **args)
    except TypeError as exc:  # an unknown key slipped past (only through code, not a recipe)
        raise RecipeError(f"{where}: trl: {exc}; remove the key") from None
    except ValueError as exc:
        # trl's messages name the key or quote the value; either points at the recipe line to fix.
        keys = [k for k in trl_args if k in str(exc)] or [k for k, v in trl_args.items() if str(v) in str(exc)]
        key = f"trl.{keys[0]}" if keys else "trl"
        raise RecipeError(f"{where}: {key}: {str(exc).strip()}; fix the value (trl's {cls.__name__} "
                          f"refused it)") from None


class _Base(Strict):
    name: str | None = None
    description: str | None = None
    # Where the recipe came from; relative paths in it are resolved against this folder.
    source_path: Path | None = Field(default=None, exclude=True)

    def resolve(self, path: str | None) -> Path | None:
        """A path written in the recipe, by the one rule of `catalogs.recipes.resolve_path`."""
        return None if path is None else resolve_path(path, self.source_path)

    @property
    def where(self) -> str:
        return str(self.source_path or "<recipe>")


class Resources(Strict):
    """What the recipe was sized for; `accelerate launch` does the launching (see README)."""

    gpus: int = Field(default=8, ge=1)
    nodes: int = Field(default=1, ge=1)
    # An accelerate config under recipes/accelerate/ (DeepSpeed ZeRO-2/3, one node or several).
    accelerate_config: str | None = None


class _TrainBase(_Base):
    # A local model folder (its path) or a Hub id: the model training starts from.
    model: str
    # The command that makes this stage's input (a multi-stage recipe); named when the input is missing.
    previous_stage: str | None = None
    resources: Resources = Field(default_factory=Resources)
    # Where checkpoints and the final model go (trl's `output_dir`).
    output_dir: str
    # None: the model's chat template, if it has `{% generation %}` markers or trl knows how to add them;
    # `chatml` or `llama3`: r1-factory's training templates; or a path to a .jinja file of your own.
    chat_template: str | None = None
    # Weights' dtype when loading: auto picks bfloat16 on a GPU that has it, float32 on the CPU.
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto"

    def trl_args(self) -> dict[str, Any]:
        """The recipe's `trl:` block, the keys it sets (each subclass types `trl` for its trainer)."""
        trl: Strict = getattr(self, "trl")
        return trl.model_dump(exclude_unset=True)

    def training_args(self, for_validation: bool = False) -> Any:
        """trl's config for this stage (SFTConfig, GRPOConfig, RewardConfig), by the subclass's `kind`."""
        return build_config(getattr(self, "kind"), self.trl_args(), self.output_dir, where=self.where,
                            for_validation=for_validation)


class SFTRecipe(_TrainBase):
    """`r1f train sft RECIPE`: trl's SFTTrainer on a catalog release."""

    kind: Literal["sft"] = "sft"
    # The catalog release to train on (`r1f release`); read through its export.
    release: str
    trl: trl_args_model("sft") = Field(default_factory=lambda: trl_args_model("sft")())  # type: ignore[valid-type]


class GateSpec(Strict):
    # A judge that must pass for the reward to count (`format`, for R1-Zero's answer-in-the-right-format rule).
    judge: str
    params: dict[str, Any] = Field(default_factory=dict)


class RewardSpec(Strict):
    # A judge from judges/registry.py: a rule judge (math_accuracy, format, language_consistency, code) or a model
    # judge (llm_judge, helpfulness, harmlessness) with its `backend`, or, for helpfulness and harmlessness, a
    # reward model: params.reward_model, a local folder (a sequence classifier) or a Hub id.
    judge: str
    weight: float = 1.0
    params: dict[str, Any] = Field(default_factory=dict)
    # SQL predicate over the prompts view (kind, domain, source, ...): the reward scores completions of the prompts
    # it selects and is left out (None to trl) elsewhere, e.g. "kind = 'reasoning'" for the rule rewards.
    where: str | None = None
    # A model judge's model (vllm, openai, transformers), as in a judge recipe; built once per training.
    backend: BackendConfig | None = None
    # A model judge's tries at a step's batch (transient failures: the backend gave up, a reply did not parse);
    # after the last one the training stops with the judge's error: a completion is never scored 0 for it.
    attempts: int = Field(default=3, ge=1)
    # The reward counts only where each of these rule judges passes, else 0 (judges.rewards.gated_reward).
    gated_by: list[GateSpec] = Field(default_factory=list)

    @field_validator("params")
    @classmethod
    def _typed(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Checked against the judge's declared params (an unknown judge is named by GRPORecipe); a relative
        reward model path resolves as `model:` does."""
        from judges.registry import registered

        spec = registered().get(info.data.get("judge", ""))
        if spec is None:
            return params
        validate_nested(spec.params, params)
        return {k: resolve_model(v, recipe_file_of(info)) if k in spec.path_params and isinstance(v, str) else v
                for k, v in params.items()}


class PromptSource(Strict):
    # The prompts of a release (each prompt once) ...
    release: str | None = None
    # ... or a SQL predicate over the catalog's prompts (source, kind, domain, language, ...).
    where: str | None = None
    # Keep prompts whose rejection-sampling pass rate (prompt_stats) lies in [low, high].
    pass_rate: tuple[float, float] | None = None
    # The prompt_stats run to read the pass rate from (default: the mean over every run that sampled it).
    pass_rate_run: str | None = None
    limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> PromptSource:
        if self.release and self.where:
            raise ValueError("give prompts.release or prompts.where, not both")
        if self.pass_rate is not None:
            lo, hi = self.pass_rate
            if not 0.0 <= lo <= hi <= 1.0:
                raise ValueError(f"pass_rate [{lo}, {hi}] must satisfy 0 <= low <= high <= 1")
        return self


class GRPORecipe(_TrainBase):
    """`r1f train grpo RECIPE`: trl's GRPOTrainer with the judges as rewards."""

    kind: Literal["grpo"] = "grpo"
    prompts: PromptSource = Field(default_factory=PromptSource)
    # How a prompt is shown to the policy: a factory template (r1_zero for a base model, reasoning, ...).
    template: TemplateConfig = Field(default_factory=lambda: TemplateConfig(name="r1_zero"))
    rewards: list[RewardSpec]
    trl: trl_args_model("grpo") = Field(default_factory=lambda: trl_args_model("grpo")())  # type: ignore[valid-type]

    @field_validator("rewards", mode="before")
    @classmethod
    def _reward_names(cls, value: Any) -> Any:
        # `rewards: [math_accuracy, format]` is shorthand for `[{judge: math_accuracy}, ...]`.
        if isinstance(value, list):
            return [{"judge": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("rewards")
    @classmethod
    def _rewards_are_judges(cls, value: list[RewardSpec]) -> list[RewardSpec]:
        from judges.registry import registered

        if not value:
            raise ValueError("give at least one reward (a judge name)")
        judges = registered()
        for i, r in enumerate(value):
            spec = judges.get(r.judge)
            if spec is None:
                raise ValueError(f"[{i}].judge {r.judge!r} is not a judge; use one of: {', '.join(sorted(judges))}")
            if spec.kind == "rule" and r.backend is not None:
                raise ValueError(f"[{i}].backend: {r.judge} is a rule judge and asks no model; remove `backend`")
            if spec.kind == "model" and r.backend is None and not r.params.get("reward_model"):
                raise ValueError(f"[{i}]: {r.judge} asks a model; give `backend:` (the judging model, as in a judge "
                                 f"recipe)" + (" or params.reward_model: a reward model's folder or Hub id"
                                               if "reward_model" in spec.params.model_fields else ""))
            for j, g in enumerate(r.gated_by):
                gate = judges.get(g.judge)
                if gate is None or gate.kind != "rule":
                    raise ValueError(f"[{i}].gated_by[{j}].judge {g.judge!r} is not a rule judge; use one of: "
                                     f"{', '.join(sorted(n for n, v in judges.items() if v.kind == 'rule'))}")
        names = [r.judge for r in value]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"{twice[0]} is given twice; trl logs each reward by its judge's name, so give each "
                             f"judge once (one `where` can select several prompt kinds)")
        return value


class PairsSpec(Strict):
    # A JSONL file of preference pairs, one `{"prompt": str, "chosen": str, "rejected": str}` a line: `chosen` and
    # `rejected` are the texts the judge will score (helpfulness: the summary; harmlessness: the whole response).
    # Relative to the recipe, as every recipe path.
    file: str


class RewardRecipe(_TrainBase):
    """`r1f train reward RECIPE`: trl's RewardTrainer on preference pairs; the saved folder is a reward model that
    the helpfulness and harmlessness judges load with `params: {reward_model: OUTPUT_DIR}`."""

    kind: Literal["reward"] = "reward"
    pairs: PairsSpec
    # What the reward model is for (documentation, recorded with the training and in its model card): helpfulness
    # scores the summary, harmlessness the whole response (judges/preference.py).
    aspect: Literal["helpfulness", "harmlessness"] | None = None
    trl: trl_args_model("reward") = Field(  # type: ignore[valid-type]
        default_factory=lambda: trl_args_model("reward")())

    @field_validator("chat_template")
    @classmethod
    def _own_template(cls, value: str | None) -> str | None:
        if value is not None:
            raise ValueError("a reward model reads pairs through its tokenizer's own chat template, as the judge that "
                             "scores with it does (judges/preference.py); remove chat_template")
        return value

    def pairs_file(self) -> Path:
        """The pairs file, resolved against the recipe's folder."""
        path = self.resolve(self.pairs.file)
        assert path is not None  # pairs.file is required
        return path


class Benchmark(Strict):
    # The benchmark's name: its prompts are ingested as source `bench/<name>`.
    name: str
    # JSONL/JSON/Parquet with problem (or prompt/messages) and answer, as `r1f ingest` reads.
    file: str
    # Columns to rename on ingest, e.g. {question: problem}.
    rename: dict[str, str] = Field(default_factory=dict)
    limit: int | None = Field(default=None, ge=1)
    # Multiple choice (GPQA-style): the field holding a list of options, or one field per option; the prompt lists
    # them as A), B), ... and the reference becomes the correct letter, judged in \boxed{} (catalogs/choices.py).
    choices: list[str] = Field(default_factory=list)
    # Order the options by a seed from the question, for files that list the correct option first (GPQA).
    shuffle_choices: bool = False

    @model_validator(mode="after")
    def _shuffle_needs_choices(self) -> Benchmark:
        if self.shuffle_choices and not self.choices:
            raise ValueError("shuffle_choices needs choices: name the field holding the options, or one field per "
                             "option")
        return self


def _eval_sampling() -> SamplingConfig:
    # The paper's evaluation setting: temperature 0.6, top-p 0.95, 32,768 tokens.
    return SamplingConfig(temperature=0.6, top_p=0.95, max_tokens=32768)


class EvalRecipe(_Base):
    """`r1f eval RECIPE`: k samples per benchmark problem, judged, pass@1 and cons@k from the catalog."""

    backend: BackendConfig
    benchmarks: list[Benchmark]
    template: TemplateConfig = Field(default_factory=TemplateConfig)
    sampling: SamplingConfig = Field(default_factory=_eval_sampling)
    # Samples per problem (the paper: 4 to 64).
    k: int = Field(default=16, ge=1, le=1024)
    # Judges that score each sample; the first decides pass@1 and cons@k.
    judges: list[str] = Field(default_factory=lambda: ["math_accuracy"])

    @field_validator("judges")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        from judges.registry import JUDGES

        for i, j in enumerate(value):
            if j not in JUDGES:
                raise ValueError(f"[{i}] {j!r} is not a judge; use one of: {', '.join(sorted(JUDGES))}")
        if not value:
            raise ValueError("give at least one judge")
        return value


RECIPE_KINDS: dict[str, type[_Base]] = {"sft": SFTRecipe, "grpo": GRPORecipe, "reward": RewardRecipe,
                                         "eval": EvalRecipe}


def _trl_default(name: str) -> Any:
    from trl import GRPOConfig

    return next(f.default for f in dataclasses.fields(GRPOConfig) if f.name == name)


def check_group_size(recipe: GRPORecipe) -> None:
    """Each step's completions split into groups of num_generations: the batch must divide by it."""
    t = recipe.trl_args()
    if t.get("generation_batch_size") or t.get("steps_per_generation"):
        return  # trl checks those combinations itself
    group = int(t.get("num_generations") or _trl_default("num_generations"))
    batch = int(t.get("per_device_train_batch_size") or _trl_default("per_device_train_batch_size"))
    accum = int(t.get("gradient_accumulation_steps") or _trl_default("gradient_accumulation_steps"))
    if (batch * accum) % group:
        raise RecipeError(
            f"{recipe.where}: trl.per_device_train_batch_size: {batch} (x gradient_accumulation_steps {accum}) "
            f"completions per step do not divide into groups of trl.num_generations = {group}; make the batch a "
            f"multiple of {group}, or change num_generations")


def load_recipe(path: str | Path, model: type[_Base]) -> Any:
    """Parse, then check trl's config by constructing it (errors name the file and key, nothing loads)."""
    path = Path(path)
    recipe = load_model(path, model)
    recipe.source_path = path
    if isinstance(recipe, _TrainBase):
        _resolve_model(recipe)
        if isinstance(recipe, GRPORecipe):
            check_group_size(recipe)  # before trl's own check, whose message names a key the recipe may not set
        recipe.training_args(for_validation=True)
    return recipe


def resolve_model(model: str, recipe_file: Path | None) -> str:
    """A model written `./x`, `../x` or `~/x` is a local path relative to the recipe (else the working directory),
    returned absolute; anything else (a Hub id, a path from the working directory) stays as written."""
    if model.startswith(("./", "../", "~")):
        return str(resolve_path(model, recipe_file).resolve())
    return model


def _resolve_model(recipe: _TrainBase) -> None:
    recipe.model = resolve_model(recipe.model, recipe.source_path)
