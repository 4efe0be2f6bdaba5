"""Filters: a decision (passed, reason with the measured value) per generation.

Pure vectorised filters: language_mixing, long_paragraphs, code_blocks, hygiene — each
`fn(batch, params) -> decisions`. Stateful: `DedupIndex` (fed batches in order, keeps the first seen)
and `Decontaminator` / `BenchmarkIndex`. `FILTERS`, `get_filter`, `make_filter` and `params_hash` in
`filters.registry`.

Names load on first use, so that importing `filters.cli` (every `r1f` start) loads no polars. The filter
functions share their modules' names (`filters.hygiene` is a module), so get them from their modules or by
name through `get_filter`.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DECISION_SCHEMA": "filters.base", "prepare_batch": "filters.base",
    "CodeBlocksParams": "filters.code_blocks",
    "BenchmarkIndex": "filters.decontamination", "DecontaminationParams": "filters.decontamination",
    "Decontaminator": "filters.decontamination",
    "DedupIndex": "filters.dedup", "DedupParams": "filters.dedup",
    "HygieneParams": "filters.hygiene",
    "LanguageMixingParams": "filters.language_mixing",
    "LongParagraphsParams": "filters.long_paragraphs",
    "FILTERS": "filters.registry", "FilterSpec": "filters.base", "get_filter": "filters.registry",
    "make_filter": "filters.registry", "params_hash": "filters.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'filters' has no attribute {name!r}")
