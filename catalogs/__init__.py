"""The catalog: every prompt, generation, verdict, filter decision and release, with its provenance.

The ground floor. Its pure vocabulary (`records`, `split`, `scripts`, `ids`, `errors`) imports no DuckDB,
so judges and filters can use it; `Catalog` (the store) loads DuckDB on first use.
"""
from __future__ import annotations

from typing import Any

from .errors import CatalogError, RecipeError, UserError

__all__ = ["Catalog", "CatalogError", "RecipeError", "UserError"]


def __getattr__(name: str) -> Any:
    if name == "Catalog":
        from .store import Catalog

        return Catalog
    raise AttributeError(f"module 'catalogs' has no attribute {name!r}")
