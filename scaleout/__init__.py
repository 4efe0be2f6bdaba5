"""The Ray engine: `--engine ray` for `r1f generate`, `r1f judge`, `r1f filter` and `r1f eval`.

The same recipes and the same code as the local engine, spread over a Ray cluster, with the catalog still the
one source of truth: workers write Parquet staging shards, and one committer (the driver) registers each
finished shard in the catalog in a transaction. Nothing below this floor imports this package; the `r1f` face
names its entry points in its table of engines (`r1f/engines.py`) and hands that to each stage's command.
"""
