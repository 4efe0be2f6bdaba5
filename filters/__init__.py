"""Filters: a decision (passed, reason with the measured value) per generation.

Pure vectorised filters: language_mixing, long_paragraphs, code_blocks, hygiene — each
`fn(batch, params) -> decisions`. Stateful: `DedupIndex` (fed batches in order, keeps the first seen)
and `Decontaminator` / `BenchmarkIndex`. `FILTERS`, `get_filter`, `make_filter` and `params_hash` in
`filters.registry`.
"""
from filters.base import DECISION_SCHEMA, prepare_batch
from filters.code_blocks import CodeBlocksParams, code_blocks
from filters.decontamination import BenchmarkIndex, DecontaminationParams, Decontaminator, decontamination
from filters.dedup import DedupIndex, DedupParams
from filters.hygiene import HygieneParams, hygiene
from filters.language_mixing import LanguageMixingParams, language_mixing
from filters.long_paragraphs import LongParagraphsParams, long_paragraphs
from filters.registry import FILTERS, FilterSpec, get_filter, make_filter, params_hash

__all__ = [
    "DECISION_SCHEMA",
    "FILTERS",
    "BenchmarkIndex",
    "CodeBlocksParams",
    "DecontaminationParams",
    "Decontaminator",
    "DedupIndex",
    "DedupParams",
    "FilterSpec",
    "HygieneParams",
    "LanguageMixingParams",
    "LongParagraphsParams",
    "code_blocks",
    "decontamination",
    "get_filter",
    "hygiene",
    "language_mixing",
    "long_paragraphs",
    "make_filter",
    "params_hash",
    "prepare_batch",
]
