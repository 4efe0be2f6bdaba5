"""The catalog: every prompt, generation, verdict, filter decision and release, with its provenance."""
from .store import Catalog, CatalogError

__all__ = ["Catalog", "CatalogError"]
