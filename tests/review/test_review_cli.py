"""`r1f review` in the terminal: bad input, the queue options, the summary, and the JSONL round trip."""
from __future__ import annotations

import json
import socket

import pytest

from catalogs.store import Catalog
from review.queue import QueueSpec, build, summary
from tests.catalogs.helpers import fingerprint, r1f, write_generations
from tests.review.helpers import judged_catalog


@pytest.fixture(scope="module")
def judged(tmp_path_factory) -> object:
    return judged_catalog(tmp_path_factory.mktemp("judged"))


def _fails(cat, *args: str) -> str:
    proc = r1f("review", "--port", "0", "--reviewer", "alice", *args, catalog=cat, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return " ".join(proc.stderr.split())


def test_bad_where_unknown_release_and_empty_queue(judged) -> None:
    assert "is not a valid SQL predicate" in _fails(judged, "--where", "domain = = 'math'")
    assert "selects no generations" in _fails(judged, "--where", "domain = 'poetry'")
    assert "no such release" in _fails(judged, "--release", "nope")
    assert "reviewer name" in " ".join(r1f("review", "--reviewer", "a#b", catalog=judged, check=False).stderr.split())


def test_port_in_use(judged) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = r1f("review", "--port", str(port), "--reviewer", "alice", catalog=judged, check=False)
    assert proc.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in " ".join(proc.stderr.split())


def test_queue_options(judged) -> None:
    cat = Catalog(judged, create=False)
    everything = build(cat, QueueSpec())
    assert len(everything.ids) == 9
    # Sample 1 of each prompt has a wrong answer: math_accuracy fails it while format passes it.
    disagree = build(cat, QueueSpec(disagree=True))
    assert len(disagree.ids) == 3
    wrong = {r["generation_id"] for r in json.loads(r1f(
        "sql", "SELECT generation_id FROM verdicts WHERE judge = 'math_accuracy' AND NOT passed", "--json",
        catalog=judged).stdout)}
    assert set(disagree.ids) == wrong
    # A seeded random draw of a release, for spot checks: the same seed, the same draw.
    r1f("release", "all", "--where", "true", catalog=judged)
    draw = build(cat, QueueSpec(release="all", sample=4, seed=7))
    assert len(draw.ids) == 4 and draw.ids == build(cat, QueueSpec(release="all", sample=4, seed=7)).ids
    assert draw.ids != build(cat, QueueSpec(release="all", sample=4, seed=8)).ids
    assert draw.spec.label() == "release all · random 4 (seed 7)"


def _decisions_file(path, gids: list[str]) -> None:
    lines = [
        {"generation_id": gids[0], "reviewer": "alice", "decision": "approve", "time": "2026-01-05T10:00:00Z"},
        {"generation_id": gids[1], "reviewer": "alice", "decision": "reject", "reason": "wrong_answer",
         "time": "2026-01-05T10:01:00Z"},
        {"generation_id": gids[1], "reviewer": "bob", "decision": "approve", "time": "2026-01-05T10:02:00Z"},
        {"generation_id": gids[2], "reviewer": "bob", "decision": "reject", "reason": "the units are wrong",
         "time": "2026-01-05T10:03:00Z"},
        {"generation_id": gids[3], "reviewer": "alice", "decision": "edit", "time": "2026-01-05T10:04:00Z",
         "edit": {"reasoning": "A shorter, checked chain of thought.", "answer": "The answer is \\boxed{7}."}},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def _fresh(tmp_path, name: str):
    data = tmp_path / "traces.jsonl"
    if not data.exists():
        write_generations(data, n_prompts=3, per_prompt=2)
    cat = tmp_path / name
    r1f("ingest", str(data), "--generations", "--model", "deepseek-r1", "--source", "toy", catalog=cat)
    return cat


def test_export_import_round_trip(tmp_path) -> None:
    a = _fresh(tmp_path, "a")
    gids = [r["generation_id"] for r in json.loads(r1f(
        "sql", "SELECT generation_id FROM generation_meta ORDER BY generation_id", "--json", catalog=a).stdout)]
    decisions = tmp_path / "decisions.jsonl"
    _decisions_file(decisions, gids)
    out = json.loads(r1f("review", "--import", str(decisions), "--json", catalog=a).stdout)
    assert out == {"lines": 5, "added": 5, "edits": 1}
    # Importing again adds nothing: every decision and the edit are keyed by content.
    assert json.loads(r1f("review", "--import", str(decisions), "--json", catalog=a).stdout)["added"] == 0
    exported_a = tmp_path / "a.jsonl"
    r1f("review", "--export", str(exported_a), catalog=a)
    rows = [json.loads(line) for line in exported_a.read_text().splitlines()]
    assert [(r["reviewer"], r["decision"], r["reason"]) for r in rows] == [
        ("alice", "approve", "approved"), ("alice", "reject", "wrong_answer"), ("bob", "approve", "approved"),
        ("bob", "reject", "other: the units are wrong"), ("alice", "edit", "edited")]
    assert rows[4]["edit"]["generation_id"].startswith("g_")

    # Another catalog with the same generations takes the export and gives the same export back.
    b = _fresh(tmp_path, "b")
    r1f("review", "--import", str(exported_a), catalog=b)
    exported_b = tmp_path / "b.jsonl"
    r1f("review", "--export", str(exported_b), catalog=b)
    assert exported_b.read_bytes() == exported_a.read_bytes()
    edit_id = rows[4]["edit"]["generation_id"]
    shown = json.loads(r1f("show", edit_id, "--json", catalog=b).stdout)
    assert shown["edit_of"]["generation_id"] == gids[3] and shown["edited_by"] == "alice"
    assert str(shown["edited_at"]).startswith("2026-01-05 10:04")

    # The summary over these samples: newest decision per sample counts (bob's approval of gids[1]).
    s = summary(Catalog(b, create=False), gids)
    assert (s["decided"], s["approved"], s["rejected"], s["edited"]) == (4, 2, 1, 1)
    assert s["accept_rate"] == 0.5


def test_bad_import_changes_nothing(tmp_path) -> None:
    a = _fresh(tmp_path, "a")
    gid = json.loads(r1f("sql", "SELECT min(generation_id) AS g FROM generation_meta", "--json", catalog=a).stdout)[0]["g"]
    good = {"generation_id": gid, "reviewer": "alice", "decision": "approve", "time": "2026-01-05T10:00:00Z"}
    cases = {
        "not json": ("{oops\n", "bad.jsonl:2: not JSON"),
        "bad decision": (json.dumps({**good, "decision": "maybe"}) + "\n", "field 'decision' is 'maybe'"),
        "unknown sample": (json.dumps({**good, "generation_id": "g_000"}) + "\n", "no generation g_000"),
        "emptied reasoning": (json.dumps({**good, "decision": "edit", "edit": {"reasoning": " ", "answer": "x"}})
                              + "\n", "empties the reasoning"),
        "tampered edit": (json.dumps({**good, "decision": "edit", "edit": {
            "generation_id": "g_123", "reasoning": "new", "answer": "x"}}) + "\n", "does not hash"),
    }
    before = fingerprint(a)
    for name, (second, message) in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps(good) + "\n" + second)
        proc = r1f("review", "--import", str(bad), catalog=a, check=False)
        assert proc.returncode == 2, name
        assert message in " ".join(proc.stderr.split()), (name, proc.stderr)
        assert "bad.jsonl:2" in " ".join(proc.stderr.split()), name
        assert fingerprint(a) == before, f"{name}: a failed import wrote to the catalog"
