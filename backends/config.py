"""A model client as a recipe names it: which backend, which model, and its engine or endpoint settings.

Every stage that calls a model (generation, the LLM judge, preference scoring, eval) takes this block.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from catalogs.ids import content_hash, file_sha256
from catalogs.recipes import Strict as _Strict


# The backends that load the model into this process (a model path to check, a tokenizer beside it).
IN_PROCESS = ("vllm", "transformers")


class BackendConfig(_Strict):
    # The names of `backends.BACKENDS` (a test keeps the two lists equal).
    name: Literal["vllm", "openai", "transformers"]
    # A local model folder or a Hub id (vllm, transformers), or the served model name (openai).
    model: str
    # openai: the API root; or a list of them (replicas of one served model), load-balanced with per-endpoint
    # health and backoff.
    base_url: str | list[str] | None = None
    # Name of the environment variable holding the API key; the key itself never goes in a recipe.
    api_key_env: str | None = None
    max_concurrency: int = Field(default=32, ge=1)
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0)
    # A tokenizer (local path or Hub id) for prompt-length checks; defaults to the model for vllm and transformers.
    tokenizer: str | None = None
    # Keyword arguments for the model's chat template (e.g. {enable_thinking: false} for Qwen3), used wherever a
    # prompt is rendered: the engine, the length check, --dry-run; an openai endpoint gets them in the request.
    chat_template_kwargs: dict[str, Any] = Field(default_factory=dict)
    # Engine settings for the in-process vLLM engine (max_model_len and dtype: transformers too).
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
                "set it to the server's URL, e.g. http://127.0.0.1:8000/v1, or a list of replicas' URLs"
            )
        if isinstance(self.base_url, list):
            bad = [u for u in self.base_url if not u.startswith(("http://", "https://"))]
            if bad:
                raise ValueError(f"backend.base_url: {bad[0]!r} is not an http(s) URL; give each replica's API "
                                 "root, e.g. http://10.0.0.2:8000/v1")
            if len(set(self.base_url)) != len(self.base_url):
                raise ValueError("backend.base_url lists the same URL twice; list each replica once")
        if self.name == "transformers":
            foreign = sorted(k for k in self.model_fields_set if k not in _TRANSFORMERS_KEYS)
            if foreign:
                raise ValueError(
                    f"backend.{foreign[0]} is not a setting of the transformers backend (it takes "
                    f"{', '.join(_TRANSFORMERS_KEYS[1:])}); remove it, or use name: vllm for the vLLM engine"
                )
        return self

    @property
    def in_process(self) -> bool:
        """Whether the backend loads the model here (its path must exist; its tokenizer is at hand)."""
        return self.name in IN_PROCESS

    def model_sha256(self) -> str | None:
        """The content hash of the model folder an in-process backend loads (see `model_sha256`); None otherwise."""
        return model_sha256(self.model) if self.in_process else None

    def engine_options(self) -> dict[str, Any]:
        """The keyword arguments the backend constructor gets (name excluded, unset ones dropped)."""
        skip = {"name", "engine_kwargs", "tokenizer", "chat_template_kwargs"}
        opts = {k: v for k, v in self.model_dump().items() if k not in skip and v is not None}
        opts.update(self.engine_kwargs)
        return opts


# The files a model is loaded from (weights, config, tokenizer, chat template, remote code). A trainer's by-products
# beside them change nothing the model computes but differ between two runs that made the same weights: its
# pickled arguments hold the output path, its state and results hold wall times, and the model card (README.md)
# names the folder; so they are left out, and so are hidden files (markers) and subfolders (checkpoints, logs).
_MODEL_SUFFIXES = (".safetensors", ".bin", ".json", ".jinja", ".model", ".txt", ".tiktoken", ".py")
_NOT_MODEL = ("training_args.bin", "trainer_state.json", "all_results.json", "train_results.json",
              "eval_results.json")


def model_sha256(model: str | os.PathLike[str]) -> str | None:
    """The content hash of a local model folder: its model files (above) by name and bytes; None where `model` is
    not a folder here (a Hub id, a served model's name). It reads a weight file the first time it sees it (about a
    second per GB) and remembers the hash (`_known_sha256`).
    Run ids name a local model by it (`catalogs.ids.run_id`), so the same model copied to another folder samples
    the same texts."""
    folder = Path(os.path.expanduser(os.fspath(model)))
    if not folder.is_dir():
        return None
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _MODEL_SUFFIXES
                   and p.name not in _NOT_MODEL and not p.name.startswith("."))
    return content_hash("model", list(zip((p.name for p in files), _known_sha256(files))))


def _hash_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "r1f" / "file-sha256.json"


# The cache file's text as this process last parsed it, and what it parsed to. It holds every model file the
# machine hashed (thousands of entries after a while: 7 ms to parse, for each eval or generate); reading and comparing
# the text costs a fraction of that, and what is used is still exactly what the file holds.
_parsed_cache: dict[str, tuple[str, dict[str, Any]]] = {}


def _known_sha256(paths: list[Path]) -> list[str]:
    """`file_sha256` of each path, remembered per file by its path, size and modification time (nanoseconds), as
    `make` trusts them: a 100 GB model is read once, not on every generate and eval. A file rewritten in place gets
    a new modification time, so a new hash. The cache is one JSON file under $XDG_CACHE_HOME/r1f, read once and
    written once per call (only when something was hashed); one that cannot be read or written is ignored."""
    import json

    cache_file = _hash_cache()
    try:
        text = cache_file.read_text()
        seen = _parsed_cache.get(str(cache_file))
        if seen is not None and seen[0] == text:
            known = dict(seen[1])
        else:
            known = json.loads(text)
            assert isinstance(known, dict)
            _parsed_cache[str(cache_file)] = (text, dict(known))
    except (OSError, ValueError, AssertionError):
        known = {}
    digests, changed = [], False
    for path in paths:
        st = path.stat()
        key, stamp = str(path.resolve()), [st.st_size, st.st_mtime_ns]
        hit = known.get(key)
        if isinstance(hit, list) and len(hit) == 3 and hit[:2] == stamp:
            digests.append(str(hit[2]))
            continue
        digests.append(file_sha256(path))
        known[key], changed = [*stamp, digests[-1]], True
    if changed:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_name(f"{cache_file.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known))
            tmp.replace(cache_file)  # atomic: a reader sees the old file or the new one
        except OSError:
            pass
    return digests


_VLLM_ENGINE_KEYS = ("max_model_len", "gpu_memory_utilization", "tensor_parallel_size", "dtype", "enforce_eager")
_TRANSFORMERS_KEYS = ("name", "model", "tokenizer", "chat_template_kwargs", "max_model_len", "dtype", "engine_kwargs")
_OPENAI_KEYS = ("api_key_env", "max_concurrency", "requests_per_minute", "tokens_per_minute", "timeout_s",
                "max_retries")


def backend_kwargs(b: BackendConfig) -> dict[str, Any]:
    """Constructor keyword arguments for `get_backend(b.name, **kw)`."""
    kw: dict[str, Any] = {"model": b.model}
    if b.name == "vllm":
        kw.update({k: getattr(b, k) for k in _VLLM_ENGINE_KEYS if getattr(b, k) is not None})
        if b.kv_cache_gb is not None:
            kw["kv_cache_memory_bytes"] = int(b.kv_cache_gb * (1 << 30))
    elif b.name == "transformers":
        kw.update({k: getattr(b, k) for k in ("max_model_len", "dtype") if getattr(b, k) is not None})
    else:
        kw["base_url"] = b.base_url
        kw.update({k: getattr(b, k) for k in _OPENAI_KEYS if getattr(b, k) is not None})
    if b.chat_template_kwargs:
        kw["chat_template_kwargs"] = dict(b.chat_template_kwargs)
    kw.update(b.engine_kwargs)
    return kw
