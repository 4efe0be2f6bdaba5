"""Name -> filter registry. Adding a filter is one file and one line in FILTERS.

Pure filters are functions `(batch, params) -> decisions`. Stateful ones (dedup, decontamination)
are classes built from their params (`DedupIndex(params)`, `Decontaminator(params)`), whose
instances are called batch after batch; `make_filter` hides the difference.

A filter module imports only `filters.base`; this module imports the filters.
"""
from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import polars as pl

from catalogs.errors import UserError
from filters.base import FilterParams, validate_params


@dataclass(frozen=True)
class FilterSpec:
    name: str
    version: str
    params: type[FilterParams]
    # A pure filter: fn(batch, params) -> decisions.
    fn: Callable[..., pl.DataFrame] | None = None
    # A stateful filter: factory(params) -> callable(batch) -> decisions, fed batches in order.
    factory: Callable[[Any], Callable[[Any], pl.DataFrame]] | None = None

    @property
    def stateful(self) -> bool:
        return self.factory is not None



def _m(name: str) -> Any:  # the module (the package re-exports functions of the same names)
    return importlib.import_module(f"filters.{name}")


_lm, _lp, _cb, _hy, _dd, _dc = (_m(n) for n in ("language_mixing", "long_paragraphs", "code_blocks", "hygiene",
                                               "dedup", "decontamination"))

# One line per filter.
FILTERS: dict[str, FilterSpec] = {s.name: s for s in [
    FilterSpec("language_mixing", _lm.VERSION, _lm.LanguageMixingParams, fn=_lm.language_mixing),
    FilterSpec("long_paragraphs", _lp.VERSION, _lp.LongParagraphsParams, fn=_lp.long_paragraphs),
    FilterSpec("code_blocks", _cb.VERSION, _cb.CodeBlocksParams, fn=_cb.code_blocks),
    FilterSpec("hygiene", _hy.VERSION, _hy.HygieneParams, fn=_hy.hygiene),
    FilterSpec("dedup", _dd.VERSION, _dd.DedupParams, factory=_dd.DedupIndex),
    FilterSpec("decontamination", _dc.VERSION, _dc.DecontaminationParams, factory=_dc.Decontaminator),
]}


class UnknownFilterError(UserError, KeyError):
    def __str__(self) -> str:  # KeyError would print the repr of the message
        return str(self.args[0])


def get_filter(name: str) -> FilterSpec:
    """The spec of a registered filter; an unknown name raises an error listing the known ones."""
    if name not in FILTERS:
        raise UnknownFilterError(f"unknown filter {name!r}; known filters: {', '.join(sorted(FILTERS))}. "
                                 f"Check the name in the recipe's filters section.")
    return FILTERS[name]


def resolve_params(name: str, params: FilterParams | Mapping[str, Any] | None) -> Any:
    """Validate params for filter `name` (dict, model or None for the defaults)."""
    return validate_params(name, get_filter(name).params, params)


def make_filter(name: str, params: FilterParams | Mapping[str, Any] | None = None) -> Callable[[Any], pl.DataFrame]:
    """A callable `batch -> decisions` for filter `name`. Stateful filters keep their state in it."""
    spec = get_filter(name)
    p = resolve_params(name, params)
    if spec.factory is not None:
        return spec.factory(p)
    fn = spec.fn
    assert fn is not None

    def run(batch: Any) -> pl.DataFrame:
        return fn(batch, p)

    return run


def params_hash(name: str, params: FilterParams | Mapping[str, Any] | None = None) -> str:
    """Stable hash of (filter name, version, validated params): the cache key of its decisions.

    Defaults are filled in before hashing, so `{}` and the explicit defaults hash the same. Changing a
    threshold of one filter changes only that filter's hash.
    """
    spec = get_filter(name)
    p = resolve_params(name, params)
    payload = json.dumps({"filter": name, "version": spec.version, "params": p.model_dump(mode="json")},
                         sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
