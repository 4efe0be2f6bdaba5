"""A release's dataset card (README.md), rendered from the facts `releases.release.release_facts` reads.

Every figure on the card comes from the catalog: the generating runs with their models, templates and
sampling parameters; the judges and filters with their versions and thresholds; counts per source, domain
and language; drop reasons; accept rates from rejection sampling; the manifest's sha256. The report
(`releases/report.py`) plots the same facts, so the card and the report cannot disagree.
"""
from __future__ import annotations

import json
import re
from typing import Any

LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")

# ---------------------------------------------------------------------------------------------- the card
def size_category(n: int) -> str:
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M")):
        if n < bound:
            return label
    return "100M<n<1B"


def md(value: Any) -> str:
    """A value safe inside a Markdown table cell: no newlines, pipes or raw HTML from catalog strings."""
    text = "" if value is None else str(value)
    text = re.sub(r"[\r\n]+", " ", text).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("`", "'")


def md_table(rows: list[dict[str, Any]], columns: list[str] | None = None, code: tuple[str, ...] = ()) -> list[str]:
    """A Markdown table; the `code` columns are set as inline code."""
    if not rows:
        return ["_none_"]
    columns = columns or list(rows[0])
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        cells = [f"`{md(r.get(c))}`" if c in code and r.get(c) is not None else md(r.get(c)) for c in columns]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * float(x):.1f}%"


def card_header(facts: dict[str, Any], configs: list[dict[str, Any]], features: Any,
                license: str = "unknown") -> str:
    """The YAML header: configs, features and splits, size, license, languages, task tags.

    Dumped by PyYAML, never by string formatting, so a source or model name with a colon, a quote or a
    newline cannot break it.
    """
    import yaml
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict

    domains = sorted(facts["by_domain"])
    header: dict[str, Any] = {
        "pretty_name": facts["name"],
        "license": license,
        "language": sorted(lang for lang in facts["by_language"] if LANGUAGE_CODE.match(lang)),
        "size_categories": [size_category(facts["members"])],
        "task_categories": ["text-generation", "question-answering"],
        "tags": ["reasoning", "chain-of-thought", "synthetic", "r1-factory"]
                + [d for d in domains if re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,40}", d)],
        "configs": [{"config_name": c["name"], **({"default": True} if c.get("default") else {}),
                     "data_files": [{"split": "train", "path": c["files"]}]} for c in configs],
    }
    infos = DatasetInfosDict({c["name"]: DatasetInfo(
        features=features,
        splits=SplitDict({"train": SplitInfo(name="train", num_examples=c["rows"], num_bytes=c["bytes"])}),
        download_size=c["bytes"], dataset_size=c["bytes"]) for c in configs})
    infos.to_dataset_card_data(header)
    return yaml.safe_dump(header, sort_keys=False, allow_unicode=True, width=1000)


def render_card(facts: dict[str, Any], configs: list[dict[str, Any]], features: Any, columns: list[str],
                repo_id: str | None = None, license: str = "unknown",
                figures: dict[str, str] | None = None) -> str:
    """README.md: the YAML header, then what the dataset is, how it was made, and how to load and trace it."""
    name, m = facts["name"], facts["manifest"]
    repo = repo_id or f"path/to/{name}"
    kinds = facts["by_kind"]
    models = ", ".join(f"`{md(k)}`" for k in facts["by_model"]) or "–"
    judges = ", ".join(f"`{md(j['judge'])}`" for j in facts["judges"]) or "none"
    filters = ", ".join(f"`{md(f['filter'])}`" for f in facts["filters"]) or "none"
    example = _example_id(facts)
    lines = ["---", card_header(facts, configs, features, license).rstrip("\n"), "---", "",
             f"# {md(name)}", "",
             (f"**{facts['members']:,} samples** ({kinds.get('reasoning', 0):,} reasoning, "
             f"{kinds.get('non_reasoning', 0):,} non-reasoning) from {facts['prompts']:,} prompts, made by "
             f"{models} and kept because they passed the judges {judges} and the filters {filters}. Built the "
             f"way DeepSeek-R1 built its SFT data (rejection sampling with rule judges, then dropping mixed-"
             f"language, long-paragraph and code-block chains of thought), with "
             f"r1-factory {md(facts['code_version'])}."), "",
             (f"Every figure on this card was read from the catalog that made the release; `manifest.json` "
             f"beside the data has sha256 `{facts['manifest_sha256']}` (check it with `sha256sum "
             f"manifest.json`), and every row carries its `generation_id`."), "",
             "| | |", "|---|---|",
             f"| samples | {facts['members']:,} |", f"| prompts | {facts['prompts']:,} |",
             f"| sources | {len(facts['by_source'])} |", f"| models | {models} |",
             f"| languages | {', '.join(md(k) for k in facts['by_language'])} |",
             f"| configs | {', '.join('`' + c['name'] + '`' for c in configs)} |",
             f"| members sha256 | `{m['members_sha256']}` |",
             f"| manifest sha256 | `{facts['manifest_sha256']}` |", "",
             "## Load it", "", "```python", "from datasets import load_dataset", "",
             f'ds = load_dataset("{repo}", "all", split="train")'
             + (f'   # or {", ".join(chr(34) + c["name"] + chr(34) for c in configs[1:])}' if configs[1:] else ""),
             "# trl's SFTTrainer: keep one of the two chat forms",
             'sft = ds.select_columns(["messages"])                # or ["prompt", "completion"]', "```", ""]
    if figures:
        lines += ["## At a glance", ""]
        lines += [f"![{md(title)}]({path})" for title, path in figures.items()] + [""]
    lines += ["## How it was made", "", "### Generation", "",
              ("Each run is one model, backend, template (with its version) and set of sampling parameters; "
              "imported runs are traces made elsewhere and curated here."), ""]
    lines += md_table([{"run": r["run_id"], "kind": r["kind"], "model": r["model"],
                        "backend": r["backend"], "template": " ".join(x for x in (r["template"],
                                                                                     r["template_version"]) if x),
                        "sampling": json.dumps(r["sampling"], sort_keys=True) if r["sampling"] else "–",
                        "generations": r["generations"], "in release": r["in_release"]} for r in facts["runs"]],
                      code=("run", "sampling"))
    lines += ["", "### Rejection sampling", ""]
    if facts["sampling"]:
        lines += md_table([{**s, "accept_rate": _pct(s["accept_rate"]), "mean_pass_rate": _pct(s["mean_pass_rate"])}
                           for s in facts["sampling"]], code=("run_id",))
    else:
        lines += ["_The release's runs are imports: no rejection sampling ran in this catalog._"]
    lines += ["", "Accept rate per source (passed every judge and filter):", ""]
    lines += md_table([{**r, "accept_rate": _pct(r["accept_rate"])} for r in facts["accept_by_source"]])
    lines += ["", "### Judges", "",
              ("A judge's version includes a hash of its non-default parameters, so a changed threshold is a "
              "new version."), ""]
    lines += md_table([{**j, "accept_rate": _pct(j["accept_rate"])} for j in facts["judges"]])
    lines += ["", "### Filters", ""]
    lines += md_table([{"filter": f["filter"], "versions": f["versions"],
                        "thresholds": json.dumps(f["params"], sort_keys=True, ensure_ascii=False),
                        "decided": f["decided"], "dropped": f["dropped"], "pass_rate": _pct(f["pass_rate"])}
                       for f in facts["filters"]], code=("thresholds",))
    lines += ["", "### Drop reasons", "", ("Among the generations of these runs (the newest verdict of each "
              "judge and decision of each filter):"), ""]
    lines += md_table(facts["drop_reasons"])
    lines += ["", "Why the other generations are not in the release (from the manifest):", ""]
    lines += md_table(m["excluded"], ["why", "failed_judges", "failed_filters", "generations"])
    for heading, blocks in judged_sections(facts, md_table, lambda text: [text]):
        lines += ["", f"## {heading}", ""]
        for block in blocks:
            lines += block + [""]
    lines += ["", "## What is in it", ""]
    for key, title in (("by_source", "source"), ("by_domain", "domain"), ("by_language", "language"),
                       ("by_model", "model")):
        lines += md_table([{title: k, "samples": v} for k, v in facts[key].items()]) + [""]
    lines += ["Chain-of-thought length (characters) per domain:", ""]
    lines += md_table(facts["cot_chars"])
    lines += ["", "## Columns", "", "| column | what |", "|---|---|"]
    described = COLUMN_DOCS
    lines += [f"| `{c}` | {described.get(c, '')} |" for c in columns]
    lines += ["", "## Trace a row", "",
              "Every row's `generation_id` is a content hash. In the catalog the release came from:", "",
              "```bash", f"r1f show {example}   # source row, run parameters, every verdict and filter decision",
              f"r1f show {name}   # the release: selection, recipe, manifest", "```", "",
              "## Files", "",
              "- `data/<config>/train-*.parquet`: the rows (`all` reads both kinds' files);",
              "- `manifest.json`: the release manifest, byte for byte as frozen in the catalog;",
              ("- `recipes/`: the generation runs' recipes, the judges, the filters with their parameters, and "
              "the release selection;")]
    if figures:
        lines += ["- `assets/`: the figures above (`r1f report` draws them)."]
    lines += ["", "## Reproduce", "",
              f"Selection: `{md(m['selection'])}`", "",
              ("The same catalog state and release recipe give the same manifest, byte for byte "
              f"(`r1f release {name} --recipe recipes/release.yaml`)."), ""]
    return "\n".join(lines)


def judged_sections(facts: dict[str, Any], table: Any, note: Any) -> list[tuple[str, list[Any]]]:
    """The sections the report and the card share: how right the judges are (calibration), what the samples
    cost, and which benchmarks the prompts were checked against. `table(rows, columns)` and `note(text)` make
    each page's own blocks."""
    from catalogs.accounting import NO_PRICE
    from catalogs.calibration import NO_CALIBRATION, agreement_rows, misses_rows, summary_rows

    figs = facts["calibration"]
    judged: list[Any] = [note(NO_CALIBRATION)] if not figs else [
        note("From human decisions on a stratified sample (`r1f review --calibrate JUDGE`): precision is the share "
             "of what a judge passed that people found good, recall the share of the good that it passed; "
             "95% Wilson intervals, strata weighted by their sizes."),
        table(summary_rows(figs)),
        note("Good samples dropped and bad samples kept, estimated over each draw's population:"),
        table(misses_rows(figs)),
        note("Agreement between judges (human_good: approved / decided in each cell):"),
        table(agreement_rows(figs))]
    cost = facts["cost"]
    spent: list[Any] = [note("Tokens and engine seconds per run (GPU-seconds where a GPU ran it):"),
                        table(cost["usage"])]
    if cost["total"] is None:
        spent.append(note(NO_PRICE))
    else:
        spent += [note("Cost per accepted sample (priced runs; filter_dropped: passed every judge, then a "
                       "filter dropped it):"), table([cost["total"]]),
                  table(cost["by_source"]), table(cost["by_domain"]), table(cost["by_pass_rate"])]
    contamination = facts["contamination"]
    checked = [table(contamination)] if contamination else [
        note("No decontamination ran on these generations: no benchmark was checked. Add the `decontamination` "
             "filter with `benchmark_files` to a filter recipe and run `r1f filter`.")]
    return [("How right are the judges?", judged), ("What the samples cost", spent),
            ("Contamination: benchmarks checked", checked)]


def _example_id(facts: dict[str, Any]) -> str:
    return facts.get("example_id") or "g_…"


COLUMN_DOCS = {
    "messages": "chat: the prompt's turns, then the assistant turn with the reasoning as the template rendered it",
    "prompt": "the prompt's turns (trl's conversational prompt-completion)",
    "completion": "the assistant turn",
    "reasoning": "the chain of thought, split from the answer",
    "answer": "the final answer (summary) after the reasoning",
    "reference": "the reference answer the judges compared against",
    "reference_answer": "the reference answer the judges compared against",
    "source": "the source the prompt was ingested from",
    "kind": "reasoning or non_reasoning",
    "domain": "math, code, general, …",
    "language": "the prompt's language",
    "model": "the model that wrote the response",
    "generation_id": "content hash of the sample; `r1f show` traces it",
    "prompt_id": "content hash of the prompt",
    "run_id": "the run (model, template, sampling parameters) that made it",
    "verdicts": "each judge's newest verdict: judge, version, score, passed, reason",
}
