"""`r1f report`'s training curves: the trainings behind the models that made a release, drawn as inline SVG with
every logged step a vertex of its line and a dot whose tooltip gives its value; nothing at all for a release that
no training stands behind."""
from __future__ import annotations

import datetime as dt
import html
import math
import re
from pathlib import Path
from typing import Any

import pytest

from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest
from releases.release import create_release
from training.runs import curve

from tests.catalogs.helpers import write_generations

from .test_publish import run_r1f
from .test_report import ARTIFACTS, CHROMIUM, render

T0 = dt.datetime(2026, 1, 1)
# trl's log_history as the trainers leave it: one entry per logged step, then the run's summary (no curve point).
SFT_LOG = [{"loss": 2.5, "step": 1}, {"loss": 1.75, "step": 2}, {"loss": math.nan, "step": 3},
           {"loss": 0.9, "step": 4}, {"loss": 0.6, "step": 5}, {"train_loss": 1.4, "train_runtime": 3.0, "step": 5}]
GRPO_LOG = [{"loss": 0.0, "reward": r, "reward_std": 0.3, "rewards/format/mean": f, "rewards/math_accuracy/mean": a,
             "completions/mean_length": n, "kl": 0.0, "step": s}
            for s, r, f, a, n in [(2, 0.25, 0.2, 0.05, 31.0), (4, 0.8, 0.7, 0.1, 42.5), (6, 1.1, 0.95, 0.15, 58.0),
                                  (8, 1.0, 0.9, 0.1, 71.25)]] + [{"train_loss": 0.0, "step": 8}]


def record(cat: Catalog, tid: str, kind: str, base: str, out: str, log: list[dict[str, Any]], status: str = "finished",
           minutes: int = 0, **data: str) -> None:
    """A trainings row as training/runs.py `record` writes it, with the curve `curve()` keeps of trl's log."""
    cat.record_training({"training_id": tid, "kind": kind, "model": out, "base_model": base, "output_dir": out,
                         "recipe": {"model": base, "output_dir": out}, "status": status,
                         "metrics": {"curve": curve(log), "global_step": log[-1]["step"]},
                         "started_at": T0, "finished_at": T0 + dt.timedelta(minutes=minutes) if status == "finished"
                         else None, **data})


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """pretrained -> SFT (t_sft) -> GRPO (t_rl) -> the generations of release `rel`. Beside it: a failed GRPO into
    the same folder, a GRPO of another model, and release `plain`, whose generations no training here made."""
    root = tmp_path_factory.mktemp("curves")
    models = root / "models"
    cat = Catalog(root / "cat")
    record(cat, "t_sft", "sft", str(models / "pretrained"), str(models / "sft"), SFT_LOG, minutes=1,
           release_name="cold-start")
    record(cat, "t_rl_failed", "grpo", str(models / "sft"), str(models / "rl"), GRPO_LOG, status="failed")
    record(cat, "t_rl", "grpo", str(models / "sft"), str(models / "rl"), GRPO_LOG, minutes=2,
           prompts_where="kind = 'reasoning'")
    record(cat, "t_other", "grpo", str(models / "pretrained"), str(models / "other"), GRPO_LOG, minutes=3)
    for model, source in ((str(models / "rl"), "ours"), ("deepseek-r1", "theirs")):
        gens = root / f"{source}.jsonl"
        write_generations(gens, n_prompts=3)
        ingest(cat, gens, IngestOptions(source=source, generations=True, model=model, domain="math"))
    create_release(cat, "rel", where="source = 'ours'")
    create_release(cat, "plain", where="source = 'theirs'")
    return cat


def charts(text: str) -> dict[str, dict[str, Any]]:
    """Each curve chart of the page by its title: its polylines' vertices and its dots' tooltips, with their centres."""
    out = {}
    for fig in re.findall(r"<figure class='curve'>.*?</figure>", text, re.S):
        title = html.unescape(re.search(r"<title>(.*?)</title>", fig).group(1))
        lines = [[tuple(map(float, p.split(","))) for p in pts.split()]
                 for pts in re.findall(r"<polyline [^>]*points='([^']*)'", fig)]
        dots = [(float(x), float(y), html.unescape(tip)) for x, y, tip in
                re.findall(r"<circle cx='([^']*)' cy='([^']*)'[^>]*><title>(.*?)</title>", fig)]
        out[title] = {"lines": lines, "dots": dots}
    return out


def test_release_report_draws_the_curves_of_the_trainings_behind_it(catalog: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "rel.html"
    run_r1f("report", "rel", "--out", str(out), "--catalog", str(catalog.root))
    text = out.read_text(encoding="utf-8")
    assert "<h2>Training curves</h2>" in text
    # The lineage, upstream first: the SFT that made the GRPO's base, then the GRPO that made the release's model.
    assert re.findall(r"<h3>(.*?)</h3>", text) == ["sft t_sft", "grpo t_rl"]
    assert "t_rl_failed" not in text and "t_other" not in text
    assert "on release cold-start" in text and "on prompts where kind = &#39;reasoning&#39;" in text
    got = charts(text)
    assert list(got) == ["training loss per step", "mean reward per step", "mean completion length per step (tokens)"]
    steps = [e for e in GRPO_LOG if "reward" in e]
    for title, series, key in (("mean reward per step", "reward (weighted sum)", "reward"),
                               ("mean reward per step", "format", "rewards/format/mean"),
                               ("mean reward per step", "math_accuracy", "rewards/math_accuracy/mean"),
                               ("mean completion length per step (tokens)", "completions/mean_length",
                                "completions/mean_length")):
        dots = [d for d in got[title]["dots"] if d[2].startswith(series + ",")]
        assert [d[2] for d in dots] == [f"{series}, step {e['step']}: {e[key]:.4g}" for e in steps]
        # Drawn from the values: steps run left to right, and a larger value sits higher (SVG's y grows down).
        assert [x for x, _, _ in dots] == sorted(x for x, _, _ in dots)
        for (_, y1, _), (_, y2, _), e1, e2 in zip(dots, dots[1:], steps, steps[1:]):
            assert (y1 > y2) == (e1[key] < e2[key]) and (y1 == y2) == (e1[key] == e2[key])
        assert [(x, y) for x, y, _ in dots] in got[title]["lines"]  # one polyline through exactly those points
    # SFT's loss: the NaN step is a gap (two lines), not a point; the run's closing summary is no step.
    loss = got["training loss per step"]
    assert [len(line) for line in loss["lines"]] == [2, 2]
    assert [d[2] for d in loss["dots"]] == ["loss, step 1: 2.5", "loss, step 2: 1.75", "loss, step 4: 0.9",
                                            "loss, step 5: 0.6"]
    if CHROMIUM.exists():  # the page as a browser shows it: three charts drawn, nothing on the console
        seen = render(out, ARTIFACTS / "report-curves.png")
        assert seen["active"] == 3 and seen["messages"] == [] and "mean reward per step" in seen["text"]
        assert all(u.startswith(("file:", "data:")) for u in seen["requests"]), seen["requests"]


def test_a_release_no_training_stands_behind_shows_no_curves(catalog: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "plain.html"
    run_r1f("report", "plain", "--out", str(out), "--catalog", str(catalog.root))
    text = out.read_text(encoding="utf-8")
    assert "Release plain" in text and "Training curves" not in text and "<svg" not in text and "<h3>" not in text
