"""Generation recipes: one YAML file says which prompts, which model, which template, how to sample
and how many accepted samples each prompt needs.

`load_recipe(path)` parses and validates it; every error names the file, the key path (and line),
and the fix. `check_recipe(...)` does the checks that need more than the file (model path,
template placeholders, prompt lengths against the model's context) before any generation starts.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from backends.config import BackendConfig
from catalogs.errors import RecipeError
from catalogs.recipes import Strict as _Strict
from catalogs.recipes import parse_model, read_yaml, resolve_path


class PromptSelection(_Strict):
    # SQL predicate over the catalog's prompt columns (prompt_id, source, kind, domain, language, ...).
    where: str | None = None
    limit: int | None = Field(default=None, ge=1)


class TrivialRule(_Strict):
    """Which queries are trivial (greetings and the like) and get no CoT in the non-reasoning template."""

    patterns: list[str] = Field(
        default_factory=lambda: [
            r"(hi|hello|hey|yo|hiya|howdy)( there)?[!. ]*",
            r"good (morning|afternoon|evening|night)[!. ]*",
            r"(thanks|thank you|thx|ty)( (so|very) much)?[!. ]*",
            r"(bye|goodbye|see you)[!. ]*",
            r"(ok|okay|cool|nice|great)[!. ]*",
        ]
    )
    # Queries at most this many characters long are trivial too (0 turns the length rule off).
    max_chars: int = Field(default=0, ge=0)

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for i, p in enumerate(patterns):
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"patterns[{i}] {p!r} is not a valid regular expression ({exc}); fix it")
        return patterns


class TemplateConfig(_Strict):
    # A built-in template name (r1_zero, cold_start, reasoning, non_reasoning) ...
    name: str = "reasoning"
    # ... or a template file of your own (YAML, same shape as factory/templates/*.yaml).
    file: str | None = None
    # Pin the template version; an error if the file has another.
    version: str | None = None
    # cold_start: a JSONL file of long-CoT examples ({problem, reasoning, summary} per line).
    examples_file: str | None = None
    num_examples: int | None = Field(default=None, ge=1)
    system: str | None = None
    # reasoning: when to ask for the final answer in \boxed{}: 'math' (prompts whose domain is math),
    # 'always' or 'never'.
    boxed: Literal["math", "always", "never"] = "math"
    # non_reasoning: the rule that marks trivial queries (no CoT).
    trivial: TrivialRule = Field(default_factory=TrivialRule)


class SamplingConfig(_Strict):
    temperature: float = Field(default=0.6, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    max_tokens: int = Field(default=4096, ge=1)
    stop: list[str] | None = None
    # Mixed into every per-sample seed; change it to draw a fresh set of samples (a new run).
    seed: int = Field(default=0, ge=0)


class BudgetConfig(_Strict):
    # Most samples one prompt may get in its normal attempt.
    max_samples: int = Field(default=16, ge=1)
    # Samples per prompt in the first round (default: samples_per_prompt). Later rounds are sized
    # from the prompt's observed pass rate.
    round_size: int | None = Field(default=None, ge=1)
    # Prompts with no passing sample after the first round get one retry of this many samples
    # (their budget grows by as much); still nothing then, they are marked unsolved. 0: no retry.
    retry_samples: int | None = Field(default=None, ge=0)
    # Cap on samples asked of one prompt in a single later round.
    max_round_size: int | None = Field(default=None, ge=1)


class AcceptanceJudge(_Strict):
    """A judge a generation recipe names to decide acceptance (judges/registry.py declares the judges)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class OutputConfig(_Strict):
    stage: Literal["generations"] = "generations"
    # Prompts per backend call and catalog commit. None: a whole round in one call (best GPU use);
    # smaller values commit more often.
    chunk_prompts: int | None = Field(default=None, ge=1)
    # Finished samples are committed as they arrive, in batches of this many or once the oldest waiting one
    # is this many seconds old: a kill -9 loses at most that; a request that gives up loses nothing else.
    commit_every: int = Field(default=1000, ge=1)
    commit_seconds: float = Field(default=30.0, gt=0)


class Price(_Strict):
    """What an API backend charges, per million tokens (any currency; the card shows the number as given)."""

    input: float = Field(ge=0, strict=True, allow_inf_nan=False)
    output: float = Field(ge=0, strict=True, allow_inf_nan=False)


class Recipe(_Strict):
    name: str | None = None
    description: str | None = None
    prompts: PromptSelection = Field(default_factory=PromptSelection)
    backend: BackendConfig
    template: TemplateConfig = Field(default_factory=TemplateConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    # k: accepted samples wanted per prompt.
    samples_per_prompt: int = Field(default=1, ge=1)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)
    # Judges that decide acceptance; all must pass. None: every sample is accepted.
    judges: list[AcceptanceJudge] = Field(default_factory=list)
    output: OutputConfig = Field(default_factory=OutputConfig)
    # API backends: the price per million tokens in and out; each run's cost is recorded with its tokens.
    price_per_mtok: Price | None = None
    # Where the recipe came from; relative paths in it are resolved against this folder.
    source_path: Path | None = Field(default=None, exclude=True)

    @field_validator("judges", mode="before")
    @classmethod
    def _judge_names(cls, value: Any) -> Any:
        # `judges: [math_accuracy, format]` is shorthand for `[{name: math_accuracy}, ...]`.
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @model_validator(mode="after")
    def _budget_fits(self) -> Recipe:
        if self.budget.max_samples < self.samples_per_prompt:
            raise ValueError(
                f"budget.max_samples ({self.budget.max_samples}) is below samples_per_prompt "
                f"({self.samples_per_prompt}); raise budget.max_samples to at least {self.samples_per_prompt}"
            )
        return self

    # Resolved budget numbers, defaults filled in.
    @property
    def k(self) -> int:
        return self.samples_per_prompt

    @property
    def round_size(self) -> int:
        return min(self.budget.round_size or self.samples_per_prompt, self.budget.max_samples)

    @property
    def retry_samples(self) -> int:
        if self.budget.retry_samples is not None:
            return self.budget.retry_samples
        return 2 * self.round_size

    @property
    def max_round_size(self) -> int:
        return self.budget.max_round_size or self.budget.max_samples

    def resolve(self, path: str | None) -> Path | None:
        """A path written in the recipe, by the one rule of `catalogs.recipes.resolve_path`."""
        return None if path is None else resolve_path(path, self.source_path)

    def sampling_params(self) -> dict[str, Any]:
        """What goes into the run id: change any of it and it is a new run. The chat template's keyword arguments
        change the prompt the model sees, so they count too; only when set, so other runs keep their ids."""
        params = self.sampling.model_dump()
        if self.backend.chat_template_kwargs:
            params["chat_template_kwargs"] = dict(self.backend.chat_template_kwargs)
        return params


def parse_recipe(data: Any, source: str | Path = "<recipe>", text: str | None = None) -> Recipe:
    """Validate an already-parsed generation recipe mapping. `source` names it in errors."""
    recipe = parse_model(data, Recipe, source, text)
    if isinstance(source, Path):
        recipe.source_path = source
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a YAML generation recipe."""
    path = Path(path)
    data, text = read_yaml(path)
    recipe = parse_recipe(data, path, text)
    _resolve_model_path(recipe)
    return recipe


def _resolve_model_path(recipe: Recipe) -> None:
    """A relative local model path is relative to the recipe's folder (else the working directory);
    stored absolute, so the run id does not depend on where r1f was started."""
    model = recipe.backend.model
    if not recipe.backend.in_process or not model.startswith(("./", "../")) or recipe.source_path is None:
        return
    recipe.backend.model = str(resolve_path(model, recipe.source_path))


# ---------------------------------------------------------------------------------------------------
# Checks that need more than the file. Run before any generation.

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def looks_like_local_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or os.sep + os.sep in model or not _HUB_ID.match(model)


def check_model_path(recipe: Recipe) -> None:
    """For an in-process engine, the model must be loadable before anything starts: a local path must exist,
    and a Hub id must be in the local Hugging Face cache or, unless HF_HUB_OFFLINE is set, known to the Hub.
    One metadata call at most, so an unreachable model is a named recipe error in a second, not an engine
    traceback half a minute later. The same holds for backend.tokenizer when it is set."""
    if not recipe.backend.in_process:
        return
    where = recipe.source_path or "<recipe>"
    revision = recipe.backend.engine_kwargs.get("revision")
    model = recipe.backend.model
    if not Path(os.path.expanduser(model)).exists():
        if looks_like_local_path(model):
            raise RecipeError(
                f"{where}: backend.model: model path {model!r} does not exist; "
                "give the folder of a saved model (config.json, tokenizer, weights) or a Hub id like org/name"
            )
        check_hub_model(model, f"{where}: backend.model", revision=revision)
    tok = recipe.backend.tokenizer
    if tok and tok != model and not Path(os.path.expanduser(tok)).exists():
        if looks_like_local_path(tok):
            raise RecipeError(f"{where}: backend.tokenizer: path {tok!r} does not exist; give a tokenizer folder "
                              "or a Hub id like org/name, or leave it out to use the model's")
        check_hub_model(tok, f"{where}: backend.tokenizer", revision=None)


def hub_offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE), as huggingface_hub read it at import or as it is set now."""
    from huggingface_hub import constants

    set_now = any(os.environ.get(v, "").upper() in ("1", "ON", "YES", "TRUE")
                  for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return set_now or bool(getattr(constants, "HF_HUB_OFFLINE", False))


def check_hub_model(repo_id: str, field: str, revision: str | None = None) -> None:
    """A RecipeError naming `field` unless `repo_id` can be loaded: in the cache, or (online) on the Hub."""
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo_id, "config.json", revision=revision), str):
        return  # cached: loads without the network
    cache = constants.HF_HUB_CACHE
    local_fix = (f"download it where the Hub is reachable (`hf download {repo_id}`) into the cache {cache}, or "
                 f"give the path of a saved model folder (config.json, tokenizer, weights)")
    if hub_offline():
        raise RecipeError(f"{field}: {repo_id!r} is not a local folder and not in the Hugging Face cache ({cache}), "
                          f"and HF_HUB_OFFLINE is set, so it cannot be downloaded; {local_fix}")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        HfApi().model_info(repo_id, revision=revision, timeout=10)
    except GatedRepoError:
        raise RecipeError(f"{field}: {repo_id!r} is gated on the Hub ({constants.ENDPOINT}); accept its terms "
                          "on its Hub page and set HF_TOKEN to a token of that account") from None
    except RepositoryNotFoundError:
        raise RecipeError(f"{field}: no model {repo_id!r} on the Hub ({constants.ENDPOINT}), nor in the cache "
                          f"{cache}; check the spelling (org/name), set HF_TOKEN if it is private, or give a local "
                          "model folder") from None
    except RevisionNotFoundError:
        raise RecipeError(f"{field}: {repo_id!r} has no revision {revision!r} on the Hub; fix "
                          "backend.engine_kwargs.revision") from None
    except Exception as exc:  # noqa: BLE001 - DNS, refused, timeout, proxy: all mean the Hub cannot be reached
        reason = (str(exc).splitlines() or [""])[0][:200]
        raise RecipeError(f"{field}: {repo_id!r} is not in the Hugging Face cache ({cache}) and the Hub "
                          f"({constants.ENDPOINT}) cannot be reached to fetch it ({type(exc).__name__}: {reason}); "
                          f"{local_fix}, or set HF_HUB_OFFLINE=1 to work from the cache alone") from None


def context_length(recipe: Recipe) -> int | None:
    """The model's context: backend.max_model_len, else the model config's max_position_embeddings."""
    if recipe.backend.max_model_len:
        return recipe.backend.max_model_len
    model_dir = Path(os.path.expanduser(recipe.backend.model))
    cfg = model_dir / "config.json"
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text())
        except (OSError, ValueError):
            return None
        for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
            if isinstance(data.get(key), int):
                return int(data[key])
    return None


def load_tokenizer(recipe: Recipe) -> Any | None:
    """The tokenizer used for length checks, or None where none can be loaded without a download."""
    name = recipe.backend.tokenizer or (recipe.backend.model if recipe.backend.in_process else None)
    if not name:
        return None
    path = Path(os.path.expanduser(name))
    if not path.exists():
        return None  # never download here; the engine checks lengths itself
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(path))
    except Exception:  # noqa: BLE001 - a tokenizer we cannot load only skips the check
        return None
