"""The filters: one line per module in MODULES. A module declares its filter once, `FILTER = FilterSpec(...)`
(name, version, kind, params; see filters/base.py), so adding a filter is one file and one line here.

Pure filters are functions `(batch, params) -> decisions`. Stateful ones (dedup, decontamination) are made
from their params (`DedupIndex(params)`, `Decontaminator(params)`), and called batch after batch;
`make_filter` hides the difference.

A filter module imports only `filters.base` (and the vocabulary); this module imports the filters.
"""
from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import polars as pl

from catalogs.errors import UserError
from filters.base import FilterParams, FilterSpec, validate_params

MODULES = (
    "filters.language_mixing",
    "filters.long_paragraphs",
    "filters.code_blocks",
    "filters.hygiene",
    "filters.dedup",
    "filters.decontamination",
)

FILTERS: dict[str, FilterSpec] = {spec.name: spec for spec in
                                  (importlib.import_module(module).FILTER for module in MODULES)}
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
