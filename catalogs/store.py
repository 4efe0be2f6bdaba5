"""The catalog: one folder holding a DuckDB file (records) and append-only Parquet shards (bulk text).

`Catalog` is composed of small parts, one per concern, each standing on the core:

- `store_core`: the layout, connections with the lock retry, migrations, transactions, the reader;
- `store_prompts`: prompts, runs and generations (reads, and the streaming of samples);
- `store_verdicts`: verdicts, filter decisions, prompt stats;
- `store_leases`: leases on prompts, staging, and the commit path of generations; the process helpers;
- `store_trainings`: training runs and eval answers;
- `store_pipelines`: runs of pipelines and the state of their stages (`r1f run`, `r1f status`).

Stages use the catalog through Protocols of their own (what each needs of it); `Catalog` satisfies them all.
This module's names are the store's public API: import from here.
"""
from __future__ import annotations

from .errors import CatalogError
from .store_core import (DB_FILE, PROMPT_COLUMNS, SHARD_DIR, SHARD_ROW_GROUP, STAGING_DIR, CatalogCore,
                         code_version, gen_meta_schema, one_row, prompt_schema, query_frame, sql_literal,
                         text_schema, text_spans)
from .store_leases import (LEASE_TTL_S, LeasesAndStaging, ProcessId, PromptClaim, StagedBatch, describe_holder,
                           holder_alive, process_started, remove_orphan_staging, same_process_alive, this_process)
from .store_pipelines import PipelineRuns
from .store_prompts import PromptsAndGenerations
from .store_trainings import TrainingsAndEvals
from .store_verdicts import VerdictsAndDecisions

__all__ = ["DB_FILE", "LEASE_TTL_S", "PROMPT_COLUMNS", "SHARD_DIR", "SHARD_ROW_GROUP", "STAGING_DIR", "Catalog",
           "CatalogCore", "CatalogError", "ProcessId", "PromptClaim", "StagedBatch", "code_version",
           "describe_holder", "gen_meta_schema", "holder_alive", "one_row", "process_started", "prompt_schema",
           "query_frame", "remove_orphan_staging", "same_process_alive", "sql_literal", "text_schema", "text_spans",
           "this_process"]


class Catalog(PromptsAndGenerations, VerdictsAndDecisions, LeasesAndStaging, TrainingsAndEvals, PipelineRuns):
    """The whole catalog: `Catalog(path)` opens (or creates) the catalog folder at `path`."""
