"""Generation recipes: one YAML file says which prompts, which model, which template, how to sample
and how many accepted samples each prompt needs.

`load_recipe(path)` parses and validates it; every error names the file, the key path (and line),
and the fix. `check_recipe(...)` does the checks that need more than the file (model path,
template placeholders, prompt lengths against the model's context) before any generation starts.
"""
from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class RecipeError(ValueError):
    """A recipe that cannot run. The message names the file, the field and the fix."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PromptSelection(_Strict):
    # SQL predicate over the catalog's prompt columns (prompt_id, source, kind, domain, language, ...).
    where: str | None = None
    limit: int | None = Field(default=None, ge=1)


class BackendConfig(_Strict):
    name: Literal["vllm", "openai"]
    # A local model folder or a Hub id (vllm), or the served model name (openai).
    model: str
    base_url: str | None = None
    # Name of the environment variable holding the API key; the key itself never goes in a recipe.
    api_key_env: str | None = None
    max_concurrency: int = Field(default=32, ge=1)
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    # A tokenizer (local path or Hub id) for prompt-length checks; defaults to the model for vllm.
    tokenizer: str | None = None
    # Engine settings for the in-process vLLM engine.
    max_model_len: int | None = Field(default=None, ge=16)
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1)
    kv_cache_gb: float | None = Field(default=None, gt=0)
    tensor_parallel_size: int | None = Field(default=None, ge=1)
    dtype: str | None = None
    enforce_eager: bool | None = None
    # Anything else the engine accepts (passed through as keyword arguments).
    engine_kwargs: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _openai_needs_url(self) -> BackendConfig:
        if self.name == "openai" and not self.base_url:
            raise ValueError(
                "backend.base_url is required for the openai backend; "
                "set it to the server's URL, e.g. http://127.0.0.1:8000/v1"
            )
        return self

    def engine_options(self) -> dict[str, Any]:
        """The keyword arguments the backend constructor gets (name excluded, unset ones dropped)."""
        skip = {"name", "engine_kwargs", "tokenizer"}
        opts = {k: v for k, v in self.model_dump().items() if k not in skip and v is not None}
        opts.update(self.engine_kwargs)
        return opts


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


class JudgeSpec(_Strict):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class OutputConfig(_Strict):
    stage: Literal["generations"] = "generations"
    # Prompts per backend call and catalog commit. None: a whole round in one call (best GPU use);
    # smaller values commit more often.
    chunk_prompts: int | None = Field(default=None, ge=1)


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
    judges: list[JudgeSpec] = Field(default_factory=list)
    output: OutputConfig = Field(default_factory=OutputConfig)
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
        if path is None:
            return None
        p = Path(os.path.expanduser(path))
        if not p.is_absolute() and self.source_path is not None:
            candidate = self.source_path.parent / p
            if candidate.exists() or not p.exists():
                p = candidate
        return p

    def sampling_params(self) -> dict[str, Any]:
        """What goes into the run id: change any of it and it is a new run."""
        return self.sampling.model_dump()


# ---------------------------------------------------------------------------------------------------
# Loading, with errors that name the key, its line and the fix.

def _loc_str(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(loc: tuple[Any, ...], root: type[BaseModel] | None = None) -> type[BaseModel] | None:
    """The pydantic model that holds the key at `loc` (loc excludes the key itself)."""
    model: Any = root or Recipe
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        ann = model.model_fields[part].annotation
        model = _unwrap_model(ann)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap_model(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def _line_index(text: str) -> dict[tuple[Any, ...], int]:
    """Map key paths to 1-based line numbers, from the YAML node tree."""
    lines: dict[tuple[Any, ...], int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                lines[path + (key,)] = key_node.start_mark.line + 1
                walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    walk(root, ())
    return lines


def _line_for(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None


def _describe(err: dict[str, Any], root: type[BaseModel] | None = None) -> str:
    loc = tuple(err["loc"])
    typ = err["type"]
    key = _loc_str(loc)
    if typ == "extra_forbidden":
        holder = _model_at(loc[:-1], root)
        known = sorted(holder.model_fields) if holder else []
        known = [k for k in known if k != "source_path"]
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"remove it; allowed keys here: {', '.join(known)}"
        return f"{key}: unknown key; {hint}"
    if typ == "missing":
        return f"{key}: required key is missing; add it"
    msg = err["msg"]
    msg = msg.removeprefix("Value error, ")
    got = err.get("input")
    got_s = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
    fix = "fix the value"
    if typ.endswith(("_type", "_parsing")):
        fix = "give a value of the right type"
    elif typ == "literal_error":
        fix = "use one of the allowed values"
    return f"{key}: {msg}{got_s}; {fix}" if key else f"{msg}"


M = TypeVar("M", bound=BaseModel)


def parse_model(data: Any, model: type[M], source: str | Path = "<recipe>", text: str | None = None) -> M:
    """Validate a parsed YAML mapping against any recipe model; errors name the file, line, key and fix."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a YAML mapping of keys to values; got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        lines = _line_index(text) if text else {}
        problems = []
        for err in exc.errors():
            line = _line_for(lines, tuple(err["loc"]))
            where = f"{source}:{line}" if line else str(source)
            problems.append(f"{where}: {_describe(err, model)}")
        raise RecipeError("invalid recipe\n  " + "\n  ".join(problems)) from None


def _read_yaml(path: Path) -> tuple[Any, str]:
    if not path.is_file():
        raise RecipeError(f"{path}: recipe file not found; check the path")
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.safe_load(text), text
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RecipeError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None


def load_model(path: str | Path, model: type[M]) -> M:
    """Read and validate a YAML recipe of any stage (judge, filter, release) with the same errors."""
    path = Path(path)
    data, text = _read_yaml(path)
    return parse_model(data, model, path, text)


def parse_recipe(data: Any, source: str | Path = "<recipe>", text: str | None = None) -> Recipe:
    """Validate an already-parsed generation recipe mapping. `source` names it in errors."""
    recipe = parse_model(data, Recipe, source, text)
    if isinstance(source, Path):
        recipe.source_path = source
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """Read and validate a YAML generation recipe."""
    path = Path(path)
    data, text = _read_yaml(path)
    recipe = parse_recipe(data, path, text)
    _resolve_model_path(recipe)
    return recipe


def _resolve_model_path(recipe: Recipe) -> None:
    """A relative local model path is relative to the recipe's folder (else the working directory);
    stored absolute, so the run id does not depend on where r1f was started."""
    model = recipe.backend.model
    if recipe.backend.name != "vllm" or not model.startswith(("./", "../")) or recipe.source_path is None:
        return
    beside = (recipe.source_path.parent / model).resolve()
    here = Path(model).resolve()
    recipe.backend.model = str(beside if beside.exists() or not here.exists() else here)


# ---------------------------------------------------------------------------------------------------
# Checks that need more than the file. Run before any generation.

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def looks_like_local_path(model: str) -> bool:
    return model.startswith(("/", "./", "../", "~")) or os.sep + os.sep in model or not _HUB_ID.match(model)


def check_model_path(recipe: Recipe) -> None:
    """For the in-process engine, a model given as a local path must exist."""
    if recipe.backend.name != "vllm":
        return
    model = recipe.backend.model
    resolved = Path(os.path.expanduser(model))
    if resolved.exists():
        return
    if looks_like_local_path(model):
        where = recipe.source_path or "<recipe>"
        raise RecipeError(
            f"{where}: backend.model: model path {model!r} does not exist; "
            "give the folder of a saved model (config.json, tokenizer, weights) or a Hub id like org/name"
        )


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
    name = recipe.backend.tokenizer or (recipe.backend.model if recipe.backend.name == "vllm" else None)
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


def count_prompt_tokens(tokenizer: Any, messages: list[dict[str, str]], raw_prompt: str | None) -> int:
    if raw_prompt is not None or not getattr(tokenizer, "chat_template", None):
        text = raw_prompt if raw_prompt is not None else "\n".join(m["content"] for m in messages)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])
    ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return len(ids)
