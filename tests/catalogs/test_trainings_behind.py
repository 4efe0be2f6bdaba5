"""The catalog's one reader of training lineage and curves (`training_of`, `trainings_behind`): the report's
training curves and the demo's rl_curves.png both read them."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

from catalogs import Catalog

T0 = dt.datetime(2026, 1, 1)


def record(cat: Catalog, tid: str, base: str, out: str, minutes: int, status: str = "finished") -> None:
    cat.record_training({"training_id": tid, "kind": "grpo", "model": out, "base_model": base, "output_dir": out,
                         "status": status, "metrics": {"curve": [{"step": 1, "reward": float(minutes)}]},
                         "started_at": T0, "finished_at": T0 + dt.timedelta(minutes=minutes)})


def test_lineage_upstream_first_each_once(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "cat")
    record(cat, "t_a", "/m/base", "/m/a", 1)
    record(cat, "t_b_old", "/m/a", "/m/b", 2)
    record(cat, "t_b", "/m/a", "/m/b", 3)            # a later training into the same folder made the model there now
    record(cat, "t_b_broken", "/m/a", "/m/b", 4, status="failed")  # a failed one made nothing
    record(cat, "t_c", "/m/a", "/m/c", 5)
    record(cat, "t_loop", "/m/loop", "/m/loop", 6)   # trained into its own base folder: the walk stops
    assert [t["training_id"] for t in cat.trainings_behind(["/m/b", "/m/c", "hub/model", "/m/loop"])] == [
        "t_a", "t_b", "t_c", "t_loop"]
    found = cat.training_of("/m/b")
    assert found is not None and found["training_id"] == "t_b" and found["metrics"]["curve"] == [
        {"step": 1, "reward": 3.0}]
    assert cat.training_of("/m/base") is None and cat.trainings_behind([]) == []
