"""Calibration: planted judge errors are found. Humans decide a stratified draw through the review page's own
HTTP endpoints (a real `r1f review --calibrate` server), and `r1f calibration` estimates from the catalog."""
from __future__ import annotations

import json
import random
import urllib.request
from pathlib import Path

from tests.catalogs.helpers import r1f
from tests.review.helpers import JUDGE_RECIPE, review_server

GOOD, PLANTED, BAD = 200, 40, 50  # PLANTED of the GOOD samples carry a wrong reference: math_accuracy fails them


def _rows(seed: int = 0) -> tuple[list[dict], dict[str, bool]]:
    """One trace per problem; the truth (good or not) per problem text."""
    planted = set(random.Random(seed).sample(range(GOOD), PLANTED))
    rows, truth = [], {}
    for i in range(GOOD + BAD):
        right = 3 * i + 1
        said = right if i < GOOD else right + 2  # the bad ones give a wrong answer
        reference = right + 1 if i in planted else right
        problem = f"What is {i} times 3 plus 1?"
        rows.append({"problem": problem, "answer": str(reference),
                     "response": f"<think>\n{i} times 3 is {3 * i}, plus 1 is {said}.\n</think>\n\n"
                                 f"The answer is \\boxed{{{said}}}.", "finish_reason": "stop"})
        truth[problem] = i < GOOD
    return rows, truth


def _catalog(tmp: Path) -> tuple[Path, dict[str, bool]]:
    rows, truth = _rows()
    cat = tmp / "cat"
    for source, part in (("alpha", rows[0::2]), ("beta", rows[1::2])):
        data = tmp / f"{source}.jsonl"
        data.write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
        r1f("ingest", str(data), "--generations", "--model", "deepseek-r1", "--source", source, catalog=cat)
    recipe = tmp / "judge.yaml"
    recipe.write_text(JUDGE_RECIPE)
    r1f("judge", str(recipe), catalog=cat)
    return cat, truth


def _call(url: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def test_planted_judge_errors_are_found(tmp_path: Path) -> None:
    cat, truth = _catalog(tmp_path)
    failed = json.loads(r1f("sql", "SELECT count(*) FILTER (WHERE NOT passed) AS n FROM verdicts "
                                   "WHERE judge = 'math_accuracy'", "--json", catalog=cat).stdout)[0]["n"]
    assert failed == PLANTED + BAD
    with review_server(cat, "--calibrate", "math_accuracy", "--sample", "90", "--seed", "7") as url:
        decided = 0
        while True:
            state = _call(url + "api/state")
            gid = state["queue"]["current"]
            if gid is None:
                break
            good = truth[state["item"]["prompt"]["problem"]]
            body = {"generation_id": gid, "decision": "approve"} if good else \
                {"generation_id": gid, "decision": "reject", "reason": "wrong_answer"}
            assert _call(url + "api/decide", body)["ok"]
            decided += 1
        assert decided == 90 and state["queue"]["total"] == 90
    figs = json.loads(r1f("calibration", "math_accuracy", "--json", catalog=cat).stdout)
    (f,) = figs
    assert f["drawn"] == f["decided"] == 90 and f["population"] == GOOD + BAD
    # Half the draw is what the judge passed (all good: precision 1), half what it failed.
    assert f["precision"]["estimate"] == 1.0
    rec = f["recall"]
    assert rec["low"] <= (GOOD - PLANTED) / GOOD <= rec["high"], rec
    assert rec["high"] - rec["low"] < 0.2, rec  # the interval says something
    dropped = f["dropped_good"]  # every judge and filter passed the rest: the planted ones are what was dropped
    assert dropped["low"] <= PLANTED <= dropped["high"], dropped
    assert f["kept_bad"]["estimate"] == 0
    assert {(g["source"], g["domain"]) for g in f["by_source_domain"]} == {("alpha", "math"), ("beta", "math")}
    (agree,) = f["agreement"]
    assert agree["other"] == "format" and agree["only_other_passes"] == PLANTED + BAD
    text = r1f("calibration", catalog=cat).stdout
    assert "math_accuracy" in text and "recall" in text and "good samples dropped" in text


def test_bad_calibration_requests_name_the_fix(tmp_path: Path) -> None:
    cat, _ = _catalog(tmp_path)
    never = r1f("review", "--calibrate", "llm_judge", "--port", "0", "--reviewer", "alice", catalog=cat, check=False)
    assert never.returncode == 2
    assert "judge 'llm_judge' never ran" in never.stderr and "r1f judge" in never.stderr
    assert "math_accuracy" in never.stderr
    big = r1f("review", "--calibrate", "math_accuracy", "--sample", "1000", "--port", "0", "--reviewer", "alice",
              catalog=cat, check=False)
    assert big.returncode == 2
    assert "--sample 1000 is larger than the pool" in big.stderr and "--sample 250 or less" in big.stderr
    none = r1f("calibration", "format", catalog=cat, check=False)
    assert none.returncode == 2 and "r1f review --calibrate format" in none.stderr
    assert "r1f review --calibrate JUDGE" in r1f("calibration", catalog=cat).stdout
