"""`r1f report [NAME]`: a release (or the whole catalog) as one self-contained HTML file with plots.

The plots are drawn with matplotlib from the same facts the dataset card prints (`release_facts`), so the
report, the card and `r1f stats` cannot disagree. Each plot is a PNG embedded as base64: the file opens
anywhere, offline, and the same PNGs go into the card's `assets/` when a release is published.

matplotlib is imported inside the functions that draw, never at module import; the page is
releases/templates/report.html, rendered with Jinja2 (autoescaped) at the end.

The training curves (the paper's Figures 2 and 3) are inline SVG drawn by the template's `chart` macro from the
geometry `chart()` computes: a line per series whose vertices are the logged steps, and a marker per point whose
tooltip gives its value, so the page holds the numbers themselves, as text.
"""
from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

from catalogs.html import render_page
from catalogs.store import Catalog

from .card import judged_sections
from .release import release_facts

PALETTE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C"]


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    # No software/date metadata: the same facts give the same bytes, so a re-publish uploads nothing new.
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _bars(labels: list[str], values: list[float], title: str, xlabel: str, percent: bool = False,
          notes: list[str] | None = None) -> bytes:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, max(1.8, 0.42 * len(labels) + 1.1)))
    y = list(range(len(labels)))
    ax.barh(y, values, color=[PALETTE[i % len(PALETTE)] for i in y])
    ax.set_yticks(y, [_short(s) for s in labels])
    ax.invert_yaxis()
    ax.set_title(title, loc="left", fontsize=11)
    ax.set_xlabel(xlabel)
    if percent:
        ax.set_xlim(0, 1)
        ax.xaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    top = max(values) if values else 1
    for i, v in enumerate(values):
        text = f"{100 * v:.1f}%" if percent else f"{v:,.0f}"
        if notes:
            text += f"  {notes[i]}"
        ax.text(v + 0.01 * (1 if percent else top), i, text, va="center", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    return _png(fig)


def _short(label: str, n: int = 38) -> str:
    label = " ".join(str(label).split())
    return label if len(label) <= n else label[: n - 1] + "…"


def _empty(title: str, why: str) -> bytes:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 1.6))
    ax.set_axis_off()
    ax.set_title(title, loc="left", fontsize=11)
    ax.text(0.0, 0.4, why, fontsize=9, color="#555555", transform=ax.transAxes)
    return _png(fig)


def figures(facts: dict[str, Any]) -> dict[str, bytes]:
    """Title → PNG bytes, for every plot the report and the card show."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dist = facts["dist"]
    out: dict[str, bytes] = {}

    title = "Chain-of-thought length per domain"
    by_domain = {d: [v for v in vals if v is not None] for d, vals in dist["cot_chars_by_domain"].items()}
    by_domain = {d: v for d, v in by_domain.items() if v}
    if by_domain:
        fig, ax = plt.subplots(figsize=(6.4, 3.4))
        top = max(max(v) for v in by_domain.values())
        bins = [i * (top + 1) / 30 for i in range(31)]
        for i, (domain, vals) in enumerate(sorted(by_domain.items())):
            ax.hist(vals, bins=bins, histtype="stepfilled", alpha=0.45, color=PALETTE[i % len(PALETTE)],
                    label=f"{_short(domain, 20)} (n={len(vals):,}, median {sorted(vals)[len(vals) // 2]:,})")
        ax.set_title(title, loc="left", fontsize=11)
        ax.set_xlabel("reasoning characters per sample")
        ax.set_ylabel("samples")
        ax.legend(fontsize=8, frameon=False)
        ax.spines[["top", "right"]].set_visible(False)
        out[title] = _png(fig)
    else:
        out[title] = _empty(title, "no accepted samples with a chain of thought")

    rows = facts["accept_by_source"]
    out["Accept rate per source"] = _bars(
        [r["source"] for r in rows], [float(r["accept_rate"] or 0) for r in rows], "Accept rate per source",
        "share of generations that passed every judge and filter", percent=True,
        notes=[f"of {r['generations']:,}" for r in rows]) if rows else _empty("Accept rate per source", "no generations")

    rows = facts["accept_by_difficulty"]
    out["Accept rate per difficulty"] = _bars(
        [str(r["difficulty"]) for r in rows], [float(r["accept_rate"] or 0) for r in rows],
        "Accept rate per difficulty", "share accepted (difficulty as the source gave it)", percent=True,
        notes=[f"of {r['generations']:,}" for r in rows]) if rows else _empty("Accept rate per difficulty",
                                                                             "no generations")

    rows = facts["drop_reasons"]
    out["Drop reasons per filter and judge"] = _bars(
        [f"{r['stage']} {r['name']}: {r['reason']}" for r in rows], [r["generations"] for r in rows],
        "Drop reasons per filter and judge", "generations dropped") if rows else _empty(
        "Drop reasons per filter and judge", "nothing was dropped")

    langs = facts["by_language"]
    total = sum(langs.values()) or 1
    out["Language shares"] = _bars(list(langs), [n / total for n in langs.values()], "Language shares",
                                   "share of samples", percent=True,
                                   notes=[f"{n:,}" for n in langs.values()]) if langs else _empty(
        "Language shares", "no samples")

    title = "Pass rate per prompt (rejection sampling)"
    rates = [float(r) for r in dist["pass_rates"]]
    if rates:
        fig, ax = plt.subplots(figsize=(6.4, 3.0))
        ax.hist(rates, bins=[i / 10 for i in range(11)], color=PALETTE[0], edgecolor="white")
        ax.set_title(title, loc="left", fontsize=11)
        ax.set_xlabel("share of a prompt's samples that passed the judges")
        ax.set_ylabel("prompts")
        ax.spines[["top", "right"]].set_visible(False)
        out[title] = _png(fig)
    else:
        out[title] = _empty(title, "no rejection sampling in scope (imported runs only)")

    rows = [r for r in facts["tokens"] if r["tokens_per_accepted"] is not None]
    out["Tokens spent per accepted sample"] = _bars(
        [r["model"] or "?" for r in rows], [float(r["tokens_per_accepted"]) for r in rows],
        "Tokens spent per accepted sample", "completion tokens generated / samples accepted",
        notes=[f"{r['completion_tokens']:,} tokens, {r['accepted']:,} accepted" for r in rows]
    ) if rows else _empty("Tokens spent per accepted sample", "no token counts recorded")
    return out


def _table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> dict[str, Any]:
    """A table for the template: its column names and each row's cell texts (no rows: the template says none)."""
    columns = columns or (list(rows[0]) if rows else [])
    return {"columns": columns, "rows": [[_cell(r.get(c)) for c in columns] for r in rows]}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _note(text: str) -> dict[str, Any]:
    return {"note": text}


# The curve charts' size and plot area (SVG user units), and the most points a series marks with a dot (its line
# keeps every point; past this the dots would hide the line).
CHART_W, CHART_H, CHART_MARGIN = 460, 250, {"left": 58, "right": 14, "top": 12, "bottom": 40}
MARKED_POINTS = 200


def _ticks(lo: float, hi: float, n: int = 5, least: float = 0.0) -> list[float]:
    """About `n` round ticks (1, 2, 2.5 or 5 times a power of ten, and at least `least` apart: steps are whole
    numbers) spanning [lo, hi]. matplotlib's MaxNLocator does
    this, but these charts are drawn by the page's template, so the report's SVG needs no matplotlib figure."""
    if hi - lo < 1e-12:
        lo, hi = lo - (abs(lo) or 1) / 2, hi + (abs(hi) or 1) / 2
    raw = (hi - lo) / n
    power = 10 ** math.floor(math.log10(raw))
    step = max(least, next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9)))
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def chart(title: str, xlabel: str, series: list[tuple[str, list[tuple[float, float | None]]]]) -> dict[str, Any]:
    """One curve chart for the template's `chart` macro: each series (label, [(x, y)]) as polylines in the plot
    area, split where y is missing (a NaN loss is stored as null), with a dot per point (up to MARKED_POINTS) whose
    tooltip reads `label, step x: y`."""
    left, right = CHART_MARGIN["left"], CHART_W - CHART_MARGIN["right"]
    top, bottom = CHART_MARGIN["top"], CHART_H - CHART_MARGIN["bottom"]
    xs = [x for _, pts in series for x, _ in pts]
    ys = [y for _, pts in series for _, y in pts if y is not None]
    xticks = _ticks(min(xs), max(xs), least=1) if xs else [0.0, 1.0]
    yticks = _ticks(min(ys), max(ys)) if ys else [0.0, 1.0]

    def px(x: float) -> float:
        return round(left + (x - xticks[0]) / (xticks[-1] - xticks[0]) * (right - left), 1)

    def py(y: float) -> float:
        return round(bottom - (y - yticks[0]) / (yticks[-1] - yticks[0]) * (bottom - top), 1)

    drawn = []
    for i, (label, pts) in enumerate(series):
        segments: list[list[str]] = [[]]
        for x, y in pts:
            if y is None:
                segments.append([])
            else:
                segments[-1].append(f"{px(x)},{py(y)}")
        drawn.append({"label": label, "color": PALETTE[i % len(PALETTE)],
                      "segments": [" ".join(seg) for seg in segments if seg],
                      "points": [(px(x), py(y), f"{label}, step {x:g}: {y:.4g}") for x, y in pts if y is not None]
                      if len(pts) <= MARKED_POINTS else []})
    return {"title": title, "xlabel": xlabel, "width": CHART_W, "height": CHART_H, "left": left, "right": right,
            "top": top, "bottom": bottom, "series": drawn,
            "xticks": [(px(t), f"{t:g}") for t in xticks], "yticks": [(py(t), f"{t:.4g}") for t in yticks]}


def training_charts(training: dict[str, Any]) -> list[dict[str, Any]]:
    """A training's curve as the paper draws it: for RL (a curve with a reward), the mean reward per step (with each
    reward function's mean beside the weighted total) and the mean completion length per step (Figures 2 and 3);
    otherwise (SFT, a reward model) the loss per step. No points logged: no chart."""
    points = training["metrics"].get("curve") or []

    def line(key: str) -> list[tuple[float, float | None]]:
        return [(p["step"], p[key]) for p in points if key in p]

    keys = sorted({k for p in points for k in p if k.startswith("rewards/") and k.endswith("/mean")})
    if any("reward" in p for p in points):
        rewards = [("reward (weighted sum)", line("reward"))] + [(k.split("/")[1], line(k)) for k in keys]
        return [chart("mean reward per step", "GRPO step", rewards),
                chart("mean completion length per step (tokens)", "GRPO step",
                      [("completions/mean_length", line("completions/mean_length"))])]
    if any("loss" in p for p in points):
        kind = str(training["kind"] or "training").upper()
        return [chart("training loss per step", f"{kind} step", [("loss", line("loss"))])]
    return []


def models_behind(facts: dict[str, Any]) -> list[str]:
    """The models that made the release's samples (for the whole catalog: every run's model), in run order."""
    models = [r["model"] for r in facts["runs"] if r["model"] and (r["in_release"] or not facts["name"])]
    return list(dict.fromkeys(models))


def training_sections(trainings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the template's "Training curves" shows of each training behind the release, upstream first."""
    out = []
    for t in trainings:
        data = f"release {t['release_name']}" if t["release_name"] else (
            f"prompts where {t['prompts_where']}" if t["prompts_where"] else "")
        steps = len(t["metrics"].get("curve") or [])
        out.append({"heading": f"{t['kind']} {t['training_id']}", "base_model": t["base_model"],
                    "output_dir": t["output_dir"], "data": data, "finished_at": str(t["finished_at"])[:19],
                    "steps": steps, "charts": training_charts(t)})
    return out


def render_html(facts: dict[str, Any], pngs: dict[str, bytes], trainings: list[dict[str, Any]] | None = None) -> str:
    """The report page (releases/templates/report.html), every catalog value escaped as text. `trainings`: those
    behind the release (`Catalog.trainings_behind`), shown as their curves; none, no such section."""
    name = facts["name"]
    kpis = [("samples", f"{facts['members']:,}"), ("prompts", f"{facts['prompts']:,}"),
            ("generations in scope", f"{facts['scope_generations']:,}"),
            ("accept rate", f"{facts['members'] / facts['scope_generations']:.1%}"
             if facts["scope_generations"] else "–"),
            ("sources", str(len(facts["by_source"]))), ("models", str(len(facts["by_model"])))]
    runs = [{**{k: r[k] for k in ("run_id", "kind", "model", "backend", "template", "template_version")},
             "sampling": r["sampling"], "generations": r["generations"], "accepted / in release": r["in_release"]}
            for r in facts["runs"]]
    sections = [
        ("Accept rate per source", [_table(facts["accept_by_source"])]),
        ("Samples per domain and language", [
            _table([{"domain": k, "samples": v} for k, v in facts["by_domain"].items()]),
            _table([{"language": k, "samples": v} for k, v in facts["by_language"].items()])]),
        ("Generation runs", [_table(runs)]),
        ("Rejection sampling", [_table(facts["sampling"])]),
        ("Judges", [_table(facts["judges"])]),
        ("Filters", [_table(facts["filters"], ["filter", "versions", "params", "decided", "dropped", "pass_rate"])]),
        ("Drop reasons", [_table(facts["drop_reasons"])]),
        ("Chain-of-thought length (characters) per domain", [_table(facts["cot_chars"])]),
    ]
    sections += judged_sections(facts, _table, _note)
    if name:
        sections.append(("Excluded from the release (manifest)",
                         [_table(facts["manifest"]["excluded"], ["why", "failed_judges", "failed_filters",
                                                                 "generations"])]))
    return render_page("releases", "report.html", name=name, title=f"Release {name}" if name else "Catalog report",
                       manifest_sha256=facts.get("manifest_sha256"), code_version=facts["code_version"], kpis=kpis,
                       figures=[(t, base64.b64encode(png).decode()) for t, png in pngs.items()], sections=sections,
                       trainings=training_sections(trainings or []))


def write_report(catalog: Catalog, name: str | None, out: str | Path) -> Path:
    """Write the HTML report of release `name` (or of the whole catalog) to `out`, atomically."""
    facts = release_facts(catalog, name, distributions=True)
    text = render_html(facts, figures(facts), catalog.trainings_behind(models_behind(facts)))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out
