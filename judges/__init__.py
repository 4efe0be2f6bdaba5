"""Judges: a Sample in, a Verdict out. See judges/registry.py for the names, judges/rewards.py for trl.

Names load on first use, so that importing `judges.cli` (every `r1f` start) loads no judge."""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Sample": "catalogs.records", "Verdict": "catalogs.records", "JudgeSpec": "judges.base",
    "JUDGES": "judges.registry", "get_judge": "judges.registry", "run_judge": "judges.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'judges' has no attribute {name!r}")
