"""Generation backends behind one interface (`backends.base.Backend`).

`get_backend("vllm", model=PATH, **engine_kwargs)`, `get_backend("openai", base_url=URL, model=NAME)` or
`get_backend("transformers", model=PATH)` (small models, where starting vLLM costs more than generating).
Backends are imported on first use, so importing this package does not import vLLM.
"""
from __future__ import annotations

import importlib
from typing import Any

from backends.base import Backend, BackendError, ChatRequest, Completion


# name -> "module:Class"; a new backend is one file and one line here.
BACKENDS: dict[str, str] = {
    "vllm": "backends.vllm_backend:VLLMBackend",
    "openai": "backends.openai_backend:OpenAIBackend",
    "transformers": "backends.transformers_backend:TransformersBackend",
}


def get_backend(name: str, **kwargs: Any) -> Backend:
    """Build the backend registered as `name` with the constructor's keyword arguments."""
    try:
        target = BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"unknown backend {name!r}; choose one of {sorted(BACKENDS)} (backend: in the recipe)."
        ) from None
    module_name, cls_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(**kwargs)


__all__ = ["BACKENDS", "Backend", "BackendError", "ChatRequest", "Completion", "get_backend"]
