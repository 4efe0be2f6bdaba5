"""The catalog's tables and the documented views users query with `r1f sql`.

Bulk text (the generations) lives in append-only Parquet shards next to the DuckDB file; every other
record lives in DuckDB. Nothing is ever deleted: rejected samples stay, with what rejected them.
"""
from __future__ import annotations

# The tables of schema version 1. A later version is a migration below; a new catalog is built from these
# tables and then every migration, so that new and migrated catalogs are the same.
TABLES = """
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS sources (
  source_id VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS ingests (
  ingest_id VARCHAR PRIMARY KEY, source_id VARCHAR, uri VARCHAR, format VARCHAR, mode VARCHAR,
  rows_read BIGINT, prompts_added BIGINT, generations_added BIGINT, run_id VARCHAR,
  created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS prompts (
  prompt_id VARCHAR PRIMARY KEY, source_id VARCHAR, source VARCHAR, ingest_id VARCHAR, source_uri VARCHAR,
  source_row BIGINT, messages VARCHAR, problem VARCHAR, answer VARCHAR, tests VARCHAR,
  kind VARCHAR, domain VARCHAR, language VARCHAR, metadata VARCHAR,
  created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS runs (
  run_id VARCHAR PRIMARY KEY, kind VARCHAR, model VARCHAR, backend VARCHAR, template VARCHAR,
  template_version VARCHAR, sampling VARCHAR, recipe VARCHAR, code_version VARCHAR, source VARCHAR,
  created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS shards (
  shard VARCHAR PRIMARY KEY, rows BIGINT, bytes BIGINT, created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS generation_meta (
  generation_id VARCHAR PRIMARY KEY, prompt_id VARCHAR NOT NULL, run_id VARCHAR NOT NULL,
  sample_index BIGINT, seed BIGINT, shard VARCHAR, shard_row BIGINT, finish_reason VARCHAR,
  prompt_tokens BIGINT, completion_tokens BIGINT, text_chars BIGINT, reasoning_chars BIGINT,
  answer_chars BIGINT, latency_s DOUBLE, ingest_id VARCHAR, source_row BIGINT,
  created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS verdicts (
  generation_id VARCHAR, judge VARCHAR, judge_version VARCHAR, score DOUBLE, passed BOOLEAN,
  reason VARCHAR, details VARCHAR, created_at TIMESTAMP DEFAULT current_timestamp,
  PRIMARY KEY (generation_id, judge, judge_version));
CREATE TABLE IF NOT EXISTS filter_decisions (
  generation_id VARCHAR, filter VARCHAR, filter_version VARCHAR, params_hash VARCHAR, passed BOOLEAN,
  reason VARCHAR, value DOUBLE, params VARCHAR, created_at TIMESTAMP DEFAULT current_timestamp,
  PRIMARY KEY (generation_id, filter, filter_version, params_hash));
CREATE TABLE IF NOT EXISTS prompt_stats (
  prompt_id VARCHAR, run_id VARCHAR, samples BIGINT, accepted BIGINT, pass_rate DOUBLE, status VARCHAR,
  rounds BIGINT, tokens BIGINT, updated_at TIMESTAMP DEFAULT current_timestamp,
  PRIMARY KEY (prompt_id, run_id));
CREATE TABLE IF NOT EXISTS releases (
  name VARCHAR PRIMARY KEY, release_id VARCHAR, selection VARCHAR, recipe VARCHAR, manifest VARCHAR,
  manifest_sha256 VARCHAR, members BIGINT, created_at TIMESTAMP DEFAULT current_timestamp);
CREATE TABLE IF NOT EXISTS release_members (
  release_name VARCHAR, position BIGINT, generation_id VARCHAR, prompt_id VARCHAR,
  PRIMARY KEY (release_name, generation_id));
"""

# Schema changes: MIGRATIONS[N] is the SQL that takes a catalog from version N-1 to N. Append the next
# number; never edit a released one. The store runs the missing ones in one transaction when it opens an
# older catalog (tests/catalogs/test_migrations.py opens one written by the previous schema).
MIGRATIONS: dict[int, str] = {}

# 2: training runs and the answer classes of eval generations (training/, issue 10).
MIGRATIONS[2] = """
CREATE TABLE IF NOT EXISTS trainings (
  training_id VARCHAR PRIMARY KEY, kind VARCHAR, model VARCHAR, base_model VARCHAR, release_name VARCHAR,
  manifest_sha256 VARCHAR, prompts_where VARCHAR, recipe VARCHAR, code_version VARCHAR, status VARCHAR,
  metrics VARCHAR, output_dir VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS eval_answers (
  generation_id VARCHAR PRIMARY KEY, run_id VARCHAR, prompt_id VARCHAR, answer_key VARCHAR, method VARCHAR);
"""

# 3: human review (review/, issue 14). An edit is a new generation pointing to the one it came from; who
# made it and when ride beside the link. IF NOT EXISTS: a catalog downgraded by hand may keep the columns.
MIGRATIONS[3] = """
ALTER TABLE generation_meta ADD COLUMN IF NOT EXISTS parent_id VARCHAR;
ALTER TABLE generation_meta ADD COLUMN IF NOT EXISTS edited_by VARCHAR;
ALTER TABLE generation_meta ADD COLUMN IF NOT EXISTS edited_at TIMESTAMP;
"""

# 4: leases (factory, issue 9). A process sampling a run's prompts holds them here, so a second process on the
# same run samples other prompts instead of paying for the same samples twice. Coordination state, not a
# record: a lease is deleted when its holder is done or found dead (pid gone, or past expires_at elsewhere).
MIGRATIONS[4] = """
CREATE TABLE IF NOT EXISTS leases (
  run_id VARCHAR, prompt_id VARCHAR, holder VARCHAR NOT NULL, host VARCHAR, pid BIGINT,
  process_started DOUBLE, acquired_at DOUBLE, expires_at DOUBLE, PRIMARY KEY (run_id, prompt_id));
"""

# 5: pipelines (`r1f run`, issue 21): one row per run of a pipeline file, one per stage of it (its recipe hash,
# the inputs it read, start and end, status, what it made); and the generation id a row of a published release
# carried, kept when the release is ingested back with --generations.
MIGRATIONS[5] = """
CREATE TABLE IF NOT EXISTS pipeline_runs (
  pipeline_run_id VARCHAR PRIMARY KEY, pipeline VARCHAR NOT NULL, file VARCHAR, recipe_hash VARCHAR,
  status VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS pipeline_stages (
  pipeline VARCHAR, stage VARCHAR, position BIGINT, kind VARCHAR, recipe_hash VARCHAR, inputs VARCHAR,
  inputs_hash VARCHAR, status VARCHAR, outputs VARCHAR, error VARCHAR, pipeline_run_id VARCHAR,
  started_at TIMESTAMP, finished_at TIMESTAMP, PRIMARY KEY (pipeline, stage));
ALTER TABLE generation_meta ADD COLUMN IF NOT EXISTS published_id VARCHAR;
"""

# 6: calibration and yield accounting (issue 23). `calibration_draws` holds the stratified samples that
# `r1f review --calibrate JUDGE` drew for people to decide, one row per drawn generation with its stratum
# (source, domain, what the judge said) and the stratum's size when drawn, so the estimates weight strata by
# the population they stand for. `run_usage` holds one row per session of a run (each `r1f generate` that did
# work): tokens in and out, engine seconds (GPU-seconds where a GPU ran it), and money where the recipe gave
# a price.
MIGRATIONS[6] = """
CREATE TABLE IF NOT EXISTS calibration_draws (
  draw_id VARCHAR, judge VARCHAR, judge_version VARCHAR, seed BIGINT, generation_id VARCHAR, source VARCHAR,
  domain VARCHAR, judge_passed BOOLEAN, stratum_size BIGINT, created_at TIMESTAMP DEFAULT current_timestamp,
  PRIMARY KEY (draw_id, generation_id));
CREATE TABLE IF NOT EXISTS run_usage (
  run_id VARCHAR, session VARCHAR, backend VARCHAR, generations BIGINT, tokens_in BIGINT, tokens_out BIGINT,
  engine_s DOUBLE, gpu_s DOUBLE, price_input_per_mtok DOUBLE, price_output_per_mtok DOUBLE, cost DOUBLE,
  created_at TIMESTAMP DEFAULT current_timestamp, PRIMARY KEY (run_id, session));
"""

SCHEMA_VERSION = max(MIGRATIONS, default=1)
# Numbered without gaps: a catalog at version N has had every migration up to N, so none may be added below it.
assert sorted(MIGRATIONS) == list(range(2, SCHEMA_VERSION + 1)), "MIGRATIONS must be numbered 2, 3, … without gaps"

# Views documented for `r1f sql` (see README "Querying the catalog"). They are created per reading
# connection, over the attached catalog, because the text view must name the shard files.
VIEW_DOCS: dict[str, str] = {
    "prompts": "one row per prompt: prompt_id, source, source_uri, source_row, messages (JSON), problem, "
    "answer, tests (JSON), kind, domain, language, metadata (JSON)",
    "runs": "one row per run: run_id, kind (generate/import), model, backend, template, template_version, "
    "sampling (JSON), recipe (JSON), code_version",
    "generations": "one row per generation with its text: generation_id, prompt_id, run_id, sample_index, "
    "seed, finish_reason, prompt_tokens, completion_tokens, latency_s, text, reasoning, answer",
    "generation_meta": "generations without the text columns (fast for counts); a human edit has parent_id "
    "(the generation it came from), edited_by and edited_at; a row of a published release ingested back has "
    "published_id (the id it was published with)",
    "verdicts": "generation_id, judge, judge_version, score, passed, reason, details (JSON)",
    "filter_decisions": "generation_id, filter, filter_version, params_hash, passed, reason, value",
    "prompt_stats": "per prompt and run: samples, accepted, pass_rate, status (solved/unsolved/open)",
    "releases": "name, release_id, selection, recipe, manifest (JSON), manifest_sha256, members",
    "release_members": "release_name, position, generation_id, prompt_id",
    "sources": "source_id, name",
    "ingests": "one row per ingest: file, format, rows read and added",
    "trainings": "one row per training run: training_id, kind (sft/grpo/reward), model, base_model, release_name, "
    "manifest_sha256, prompts_where, recipe (JSON), code_version, status, metrics (JSON), output_dir",
    "calibration_draws": "per generation drawn by `r1f review --calibrate JUDGE`: draw_id, judge, judge_version, "
    "seed, source, domain, judge_passed, stratum_size (generations in its stratum when drawn)",
    "run_usage": "per session of a run: generations, tokens_in, tokens_out, engine_s, gpu_s, "
    "price_input_per_mtok, price_output_per_mtok, cost (where the recipe gave price_per_mtok)",
    "eval_answers": "per eval generation: run_id, prompt_id, answer_key (its Math-Verify equivalence class), method",
    "pipeline_runs": "one row per `r1f run` of a pipeline: pipeline_run_id, pipeline, file, recipe_hash, status, "
    "started_at, finished_at",
    "pipeline_stages": "per pipeline and stage: position, kind, recipe_hash, inputs (JSON), status "
    "(running/done/failed/waiting/stale), outputs (JSON), error, started_at, finished_at",
}

PLAIN_VIEWS = ["prompts", "runs", "generation_meta", "verdicts", "filter_decisions", "prompt_stats",
               "releases", "release_members", "sources", "ingests", "trainings", "eval_answers",
               "calibration_draws", "run_usage", "pipeline_runs", "pipeline_stages"]

EMPTY_TEXTS = ("SELECT NULL::VARCHAR AS generation_id, NULL::VARCHAR AS text, NULL::INTEGER AS r_start, "
               "NULL::INTEGER AS r_end, NULL::INTEGER AS a_start WHERE false")


def texts_sql(shard_paths: list[str]) -> str:
    if not shard_paths:
        inner = EMPTY_TEXTS
    else:
        files = ", ".join("'" + p.replace("'", "''") + "'" for p in shard_paths)
        inner = f"SELECT generation_id, text, r_start, r_end, a_start FROM read_parquet([{files}])"
    # Offsets are Python code-point offsets; DuckDB's substr counts code points too.
    return (f"SELECT generation_id, text, substr(text, r_start + 1, r_end - r_start) AS reasoning, "
            f"substr(text, a_start + 1) AS answer FROM ({inner})")


def generations_view_sql(db: str) -> str:
    return (f"SELECT g.generation_id, g.prompt_id, g.run_id, g.sample_index, g.seed, g.finish_reason, "
            f"g.prompt_tokens, g.completion_tokens, g.text_chars, g.reasoning_chars, g.answer_chars, "
            f"g.latency_s, g.created_at, t.text, t.reasoning, t.answer "
            f"FROM {db}.generation_meta g LEFT JOIN generation_texts t USING (generation_id)")
