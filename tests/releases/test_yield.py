"""Yield accounting, calibration and contamination on the report and the card.

A priced API run (`r1f generate` against a loopback stand-in for a paid API, no model engine), judged,
decontaminated against a benchmark file and released; the report, checked in headless Chromium, and the card show
what each accepted sample cost (equal to a hand computation from `r1f sql`), how right the judges are (after
people decided a calibration draw on the review page), and which benchmarks were checked.
"""
from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path

import pytest

from tests.catalogs.helpers import r1f
from tests.factory.fault_proxy import LoopbackServer, Request, Response
from tests.review.helpers import review_server

from .test_report import CHROMIUM, render

PRICE_IN, PRICE_OUT = 300.0, 1500.0  # per million tokens: large, so that six decimals show every sample's cost
# Problem -> reference; the stand-in API always answers \boxed{4}, so the 4s pass math_accuracy.
PROBLEMS = {"What is 2+2?": "4", "What is 1+3?": "4", "What is 3+1?": "4", "What is 2+3?": "5",
            "What is 6-2?": "4", "What is 9-4?": "5"}
CONTAMINATED = "What is 1+3?"


async def _paid_api(req: Request) -> Response:
    """An OpenAI-compatible chat endpoint that bills by tokens: usage grows with the question's length."""
    if req.method == "GET" and req.path.rstrip("/").endswith("/models"):
        return Response(200, json.dumps({"object": "list", "data": [{"id": "paid-model"}]}).encode())
    if req.method == "POST" and req.path.endswith("/chat/completions"):
        body = json.loads(req.body)
        question = body["messages"][-1]["content"]
        data = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": "So the answer is \\boxed{4}.",
                                         "reasoning_content": f"{question} Counting on my fingers: four."}}],
                "usage": {"prompt_tokens": 10 + len(question) // 4, "completion_tokens": 21,
                          "total_tokens": 31 + len(question) // 4}}
        return Response(200, json.dumps(data).encode())
    return Response(404, b'{"error": "not found"}')


def _sql(cat: Path, query: str) -> list[dict]:
    return json.loads(r1f("sql", query, "--json", catalog=cat).stdout)


@pytest.fixture(scope="module")
def priced(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("yield")
    cat = tmp / "cat"
    items = list(PROBLEMS.items())
    for source, part in (("alpha", items[:3]), ("beta", items[3:])):
        data = tmp / f"{source}.jsonl"
        data.write_text("".join(json.dumps({"problem": p, "answer": a, "domain": "math"}) + "\n" for p, a in part))
        r1f("ingest", str(data), "--source", source, catalog=cat)
    with LoopbackServer(_paid_api) as api:
        recipe = tmp / "gen.yaml"
        recipe.write_text(f"backend: {{name: openai, model: paid-model, base_url: '{api.base_url}', "
                          f"max_retries: 0}}\nsampling: {{temperature: 0.6, max_tokens: 64}}\n"
                          f"samples_per_prompt: 1\nbudget: {{max_samples: 2, round_size: 1, retry_samples: 1}}\n"
                          f"judges: [math_accuracy]\n"
                          f"price_per_mtok: {{input: {PRICE_IN:g}, output: {PRICE_OUT:g}}}\n")
        r1f("generate", str(recipe), catalog=cat)
    bench = tmp / "mini_bench.jsonl"
    bench.write_text(json.dumps({"id": "q7", "problem": CONTAMINATED}) + "\n")
    filters = tmp / "filters.yaml"
    filters.write_text(f"filters:\n  - name: decontamination\n    params: {{benchmark_files: ['{bench}']}}\n")
    r1f("filter", str(filters), catalog=cat)
    r1f("release", "rel", catalog=cat)
    return cat


def _cell(html_text: str, label: str) -> list[str]:
    """The cells of the report's table row that starts with `label`."""
    m = re.search(r"<tr><td>" + re.escape(label) + r"</td>(.*?)</tr>", html_text)
    assert m, label
    return re.findall(r"<td>(.*?)</td>", m.group(1))


def test_usage_and_cost_per_accepted_sample(priced: Path, tmp_path: Path) -> None:
    usage = _sql(priced, "SELECT * FROM run_usage")
    assert len(usage) == 1 and usage[0]["engine_s"] > 0
    tokens = _sql(priced, "SELECT sum(prompt_tokens) AS i, sum(completion_tokens) AS o, count(*) AS n "
                          "FROM generations")[0]
    assert (usage[0]["tokens_in"], usage[0]["tokens_out"], usage[0]["generations"]) == (tokens["i"], tokens["o"],
                                                                                          tokens["n"])
    assert usage[0]["cost"] == pytest.approx((tokens["i"] * PRICE_IN + tokens["o"] * PRICE_OUT) / 1e6)
    # By hand: what every generation cost at the recipe's price, over those every judge and filter passed.
    accepted = _sql(priced, """
        SELECT count(*) AS n FROM generation_meta g
        WHERE EXISTS (SELECT 1 FROM verdicts v WHERE v.generation_id = g.generation_id)
          AND NOT EXISTS (SELECT 1 FROM verdicts v WHERE v.generation_id = g.generation_id AND NOT v.passed)
          AND NOT EXISTS (SELECT 1 FROM filter_decisions f WHERE f.generation_id = g.generation_id AND NOT f.passed)
        """)[0]["n"]
    assert accepted == 3  # the three 4s but the contaminated one; the 5s never pass
    by_hand = round((tokens["i"] * PRICE_IN + tokens["o"] * PRICE_OUT) / 1e6 / accepted, 6)
    dropped = _sql(priced, "SELECT g.prompt_tokens AS i, g.completion_tokens AS o FROM generations g JOIN "
                           "filter_decisions f USING (generation_id) WHERE NOT f.passed")
    assert len(dropped) == 1
    dropped_cost = round((dropped[0]["i"] * PRICE_IN + dropped[0]["o"] * PRICE_OUT) / 1e6, 6)

    out = tmp_path / "report.html"
    r1f("report", "rel", "--out", str(out), catalog=priced)
    html = out.read_text()
    row = _cell(html, "all")  # scope, generations, accepted, cost, cost_per_accepted, filter_dropped, its cost
    assert int(row[1]) == accepted and float(row[3]) == by_hand
    assert int(row[4]) == 1 and float(row[5]) == dropped_cost
    # The same figures from the command line.
    cost = json.loads(r1f("stats", "--cost", "--json", catalog=priced).stdout)
    assert cost["total"]["cost_per_accepted"] == by_hand
    assert {r["source"] for r in cost["by_source"]} == {"alpha", "beta"}
    assert {r["pass_rate_bucket"] for r in cost["by_pass_rate"]} <= {"0-25%", "75-100%"}
    assert "cost per accepted sample" in r1f("stats", "--cost", catalog=priced).stdout


def test_report_and_card_show_calibration_cost_and_contamination(priced: Path, tmp_path: Path) -> None:
    card_dir = tmp_path / "hub"
    r1f("export", "rel", "--format", "hf", "--out", str(card_dir), catalog=priced)
    card = (card_dir / "README.md").read_text()
    for heading in ("## How right are the judges?", "## What the samples cost", "## Contamination: benchmarks checked"):
        assert heading in card
    assert "No calibration yet" in card and "`r1f review --calibrate JUDGE`" in card
    assert "| mini_bench | 8-gram word overlap on the problem | 6 | 1 |" in card

    # People decide a calibration draw on the review page; the report then shows the judge's figures.
    with review_server(priced, "--calibrate", "math_accuracy", "--sample", "4", "--seed", "3") as url:
        while True:
            with urllib.request.urlopen(url + "api/state", timeout=60) as resp:
                state = json.loads(resp.read())
            if state["queue"]["current"] is None:
                break
            good = "boxed{4}" in state["item"]["text"] and state["item"]["prompt"]["answer"] == "4"
            body = {"generation_id": state["queue"]["current"], "decision": "approve"} if good else \
                {"generation_id": state["queue"]["current"], "decision": "reject", "reason": "wrong_answer"}
            req = urllib.request.Request(url + "api/decide", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=60) as resp:
                assert json.loads(resp.read())["ok"]
    r1f("export", "rel", "--format", "hf", "--out", str(tmp_path / "hub2"), catalog=priced)
    card = (tmp_path / "hub2" / "README.md").read_text()
    judged = card.split("## How right are the judges?")[1].split("## What the samples cost")[0]
    assert "No calibration yet" not in judged and "| math_accuracy | all | all | 4 | 4 |" in judged
    out = tmp_path / "report.html"
    r1f("report", "rel", "--out", str(out), catalog=priced)
    if CHROMIUM.exists():
        seen = render(out, tmp_path / "report.png")
        assert not seen["messages"] and not seen["dialogs"], seen["messages"]
        text = seen["text"]
    else:
        text = out.read_text()
    for heading in ("How right are the judges?", "What the samples cost", "Contamination: benchmarks checked"):
        assert heading in text
    assert "No calibration yet" not in text and "precision" in text and "math_accuracy" in text
    assert "mini_bench" in text and "cost_per_accepted" in text


def test_bad_prices_are_refused_with_file_and_line(tmp_path: Path) -> None:
    for price, words in (("{input: -1, output: 2}", "greater than or equal to 0 (got -1); fix the value"),
                         ("{input: cheap, output: 2}", "a valid number (got 'cheap'); give a value of the right type"),
                         ("{input: '1.5', output: 2}", "a valid number (got '1.5')"),
                         ("{input: .inf, output: 2}", "finite number")):
        recipe = tmp_path / "gen.yaml"
        recipe.write_text("backend: {name: openai, model: m, base_url: 'http://127.0.0.1:9/v1'}\n"
                          f"price_per_mtok: {price}\n")
        got = r1f("generate", str(recipe), "--dry-run", catalog=tmp_path / "cat", check=False)
        assert got.returncode == 2, got.stderr
        assert f"{recipe}:2: price_per_mtok.input" in got.stderr and words in got.stderr, got.stderr
