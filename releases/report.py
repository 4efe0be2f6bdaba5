"""`r1f report [NAME]`: a release (or the whole catalog) as one self-contained HTML file with plots.

The plots are drawn with matplotlib from the same facts the dataset card prints (`release_facts`), so the
report, the card and `r1f stats` cannot disagree. Each plot is a PNG embedded as base64: the file opens
anywhere, offline, and the same PNGs go into the card's `assets/` when a release is published.

matplotlib is imported inside the functions that draw, never at module import; the page is
releases/templates/report.html, rendered with Jinja2 (autoescaped) at the end.
"""
from __future__ import annotations

import base64
import io
import json
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


def render_html(facts: dict[str, Any], pngs: dict[str, bytes]) -> str:
    """The report page (releases/templates/report.html), every catalog value escaped as text."""
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
                       figures=[(t, base64.b64encode(png).decode()) for t, png in pngs.items()], sections=sections)


def write_report(catalog: Catalog, name: str | None, out: str | Path) -> Path:
    """Write the HTML report of release `name` (or of the whole catalog) to `out`, atomically."""
    facts = release_facts(catalog, name, distributions=True)
    text = render_html(facts, figures(facts))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out
