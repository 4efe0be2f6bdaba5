"""The review page driven in a real headless Chromium, with the keyboard only; each decision checked in the
catalog through `r1f show`, in another process."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from tests.catalogs.helpers import r1f
from tests.releases.test_report import HOSTILE
from tests.review.helpers import ARTIFACTS, CHROMIUM, ROOT, browser, judged_catalog, review_server

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="Debian's chromium package is not installed")


def _current(page) -> str:
    return page.evaluate("state.queue.current")


def _show(cat, gid: str) -> dict:
    return json.loads(r1f("show", gid, "--json", "--full", catalog=cat).stdout)


def _human(data: dict) -> list[dict]:
    return [v for v in data["verdicts"] if v["judge"] == "human"]


def test_review_with_the_keyboard(tmp_path) -> None:
    cat = judged_catalog(tmp_path)
    with review_server(cat) as url, browser() as b:
        page = b.new_page(viewport={"width": 1200, "height": 900})
        page.goto(url)
        page.wait_for_selector("#answer")
        assert "sample 1 of 9" in page.inner_text("#place")
        # The reasoning is folded by default, with its length; verdicts show with their reasons.
        assert page.eval_on_selector("#reasoning", "d => d.open") is False
        assert "characters" in page.inner_text("#reasoning summary")
        assert "math_accuracy" in page.inner_text("#verdicts") and "format" in page.inner_text("#verdicts")
        assert page.inner_text("#reference")
        page.keyboard.press("t")
        assert page.eval_on_selector("#reasoning", "d => d.open") is True
        page.keyboard.press("t")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)

        approved = _current(page)
        page.keyboard.press("a")
        page.wait_for_function(f"state.queue.current !== '{approved}'")
        assert "approved" in page.inner_text("#message")

        rejected = _current(page)
        page.keyboard.press("r")
        page.wait_for_selector("#reject-panel.open")
        page.set_viewport_size({"width": 1200, "height": 1120})
        page.screenshot(path=str(ARTIFACTS / "review-reject.png"))
        # The README's figure: a sample the judges disagree on, with the reject reasons open. Refreshed on request
        # only, so a test run leaves the tracked file alone.
        if os.environ.get("R1F_UPDATE_DOCS") or not (ROOT / "docs" / "review.png").exists():
            (ROOT / "docs").mkdir(exist_ok=True)
            shutil.copy(ARTIFACTS / "review-reject.png", ROOT / "docs" / "review.png")
        page.keyboard.press("1")
        page.wait_for_function(f"state.queue.current !== '{rejected}'")
        assert "wrong_answer" in page.inner_text("#message")

        # Free-text rejection: 6, type, Enter.
        free = _current(page)
        page.keyboard.press("r")
        page.keyboard.press("6")
        page.keyboard.type("units missing in the final line")
        page.keyboard.press("Enter")
        page.wait_for_function(f"state.queue.current !== '{free}'")

        edited = _current(page)
        page.keyboard.press("e")
        page.wait_for_selector("#edit-panel.open")
        # An edit that empties the reasoning is refused with a message on the page; nothing is written.
        page.keyboard.press("Control+a")
        page.keyboard.press("Delete")
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("#message.error")
        assert "empties the reasoning" in page.inner_text("#message")
        assert _current(page) == edited
        page.keyboard.type("Seven times the number, checked twice: the product is right.")
        page.keyboard.press("Control+Enter")
        page.wait_for_function(f"state.queue.current !== '{edited}'")
        assert "new generation" in page.inner_text("#message")

        skipped = _current(page)
        page.keyboard.press("s")
        page.wait_for_function(f"state.queue.current !== '{skipped}'")
        after_skip = _current(page)

        # Reload: the queue continues where it stopped (4 decided, the skipped one comes back last).
        page.reload()
        page.wait_for_selector("#answer")
        assert "sample 5 of 9" in page.inner_text("#place")
        assert _current(page) == after_skip
        page.close()

    # Each decision, in the catalog, read by another process.
    a = _human(_show(cat, approved))
    assert [(v["judge_version"], v["passed"], v["reason"]) for v in a] == [("alice", True, "approved")]
    assert a[0]["details"]["reviewer"] == "alice" and a[0]["details"]["time"]
    r = _human(_show(cat, rejected))
    assert [(v["passed"], v["reason"]) for v in r] == [(False, "wrong_answer")]
    assert _human(_show(cat, free))[0]["reason"] == "other: units missing in the final line"
    assert _human(_show(cat, skipped)) == []

    original = _show(cat, edited)
    assert [(v["passed"], v["reason"]) for v in _human(original)] == [(False, "edited")]
    assert len(original["edits"]) == 1 and original["edits"][0]["edited_by"] == "alice"
    new_id = original["edits"][0]["generation_id"]
    edit = _show(cat, new_id)
    assert edit["edit_of"]["generation_id"] == edited and edit["edited_by"] == "alice" and edit["edited_at"]
    assert edit["reasoning"] == "Seven times the number, checked twice: the product is right."
    assert edit["answer"] == original["answer"] and edit["edit_of"]["reasoning"] == original["reasoning"]
    assert [(v["passed"], v["reason"]) for v in _human(edit)] == [(True, "approved")]
    text = r1f("show", new_id, catalog=cat).stdout
    assert f"of {edited} by alice at" in text and "original reasoning" in text
    assert f"→ {new_id} by alice" in r1f("show", edited, catalog=cat).stdout

    # The edit is a generation like any other: judging again gives it machine verdicts too.
    r1f("judge", str(tmp_path / "judge.yaml"), catalog=cat)
    judges = {v["judge"] for v in _show(cat, new_id)["verdicts"]}
    assert {"math_accuracy", "format", "human"} <= judges

    # A release can require human approval: the newest human verdict must exist (and pass, as every judge's).
    where = ("judges_failed = 0 AND filters_failed = 0 AND generation_id IN "
             "(SELECT generation_id FROM verdicts WHERE judge = 'human')")
    manifest = json.loads(r1f("release", "reviewed", "--where", where, "--json", catalog=cat).stdout)
    members = {r["generation_id"] for r in json.loads(r1f(
        "sql", "SELECT generation_id FROM release_members WHERE release_name = 'reviewed'", "--json",
        catalog=cat).stdout)}
    assert manifest["members"] == len(members)
    assert approved in members and new_id in members
    assert not members & {rejected, free, edited, skipped}
    # The same requirement in a release recipe (per prompt, the paper's mix): only human-approved samples.
    recipe = tmp_path / "release.yaml"
    recipe.write_text("require_judges: [human]\nper_prompt: 4\nreasoning: null\nnon_reasoning: null\n")
    r1f("release", "reviewed-mix", "--recipe", str(recipe), catalog=cat)
    mix = {r["generation_id"] for r in json.loads(r1f(
        "sql", "SELECT generation_id FROM release_members WHERE release_name = 'reviewed-mix'", "--json",
        catalog=cat).stdout)}
    assert mix == members


def test_two_reviewers_on_one_sample_both_kept(tmp_path) -> None:
    cat = judged_catalog(tmp_path, n_prompts=1, per_prompt=1)
    with review_server(cat, reviewer="alice") as url_a, review_server(cat, reviewer="bob") as url_b, browser() as b:
        pa, pb = b.new_page(), b.new_page()
        pa.goto(url_a)
        pb.goto(url_b)
        pa.wait_for_selector("#answer")
        pb.wait_for_selector("#answer")
        gid = _current(pa)
        assert _current(pb) == gid  # both look at the same sample at once
        pa.keyboard.press("a")
        pa.wait_for_selector("#end")
        pb.keyboard.press("r")
        pb.keyboard.press("2")
        pb.wait_for_selector("#end")
        message = pb.inner_text("#message")
        assert "alice" in message and "Both decisions are kept" in message
        # The end of the queue: accept rate and agreement with the machine judges (newest decision: bob's).
        assert pb.inner_text("#accept-rate") == "0.0%"
        assert pb.inner_text("#agreement") == "0.0%"  # the judges passed it; bob rejected it
    kept = sorted((v["judge_version"], v["passed"], v["reason"]) for v in _human(_show(cat, gid)))
    assert kept == [("alice", True, "approved"), ("bob", False, "flawed_reasoning")]


def test_hostile_sample_text_shows_as_text(tmp_path) -> None:
    """A generation may contain anything: its text, its reference answer and its source show as text, and none of
    it runs."""
    script, img, svg = HOSTILE
    problem, reasoning, answer = f"What is {script} times 7?", f"Let me think about {img} first.", f"\\boxed{{{svg}}}"
    cat = judged_catalog(tmp_path, rows=[{"problem": problem, "answer": img,
                                          "response": f"<think>\n{reasoning}\n</think>\n\n{answer}"}], source=script)
    with review_server(cat) as url, browser() as b:
        page = b.new_page()
        messages: list[str] = []
        page.on("console", lambda m: messages.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                else None)
        page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
        page.on("dialog", lambda d: (messages.append(f"dialog: {d.message}"), d.dismiss()))
        page.goto(url)
        page.wait_for_selector("#answer")
        assert page.inner_text("#problem") == problem
        assert page.text_content("#reasoning-text") == reasoning
        assert page.inner_text("#answer") == answer
        assert page.inner_text("#reference") == img
        assert script in page.inner_text("#prompt")
        page.keyboard.press("e")
        page.wait_for_selector("#edit-panel.open")
        assert page.input_value("#edit-reasoning") == reasoning and page.input_value("#edit-answer") == answer
        assert page.evaluate("document.querySelectorAll('img, svg, iframe, object, embed').length") == 0
        assert page.evaluate("document.scripts.length") == 1  # the page's own
        assert messages == []
