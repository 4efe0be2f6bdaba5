"""Human decisions written to the catalog: verdicts of the judge `human`, and edits as new generations.

How a decision is stored (the choice, and why):
- Each decision is one row of `verdicts` with `judge = 'human'` and `judge_version` = the reviewer's name. The
  verdicts key is (generation_id, judge, judge_version), so two reviewers on one sample are two rows, never
  merged. A reviewer who decides the same sample again gets `NAME#2`, `NAME#3`: nothing is overwritten, and the
  release rule "for each judge the newest verdict counts" makes the newest human decision the one that counts.
- `details` carries `reviewer`, `time` (UTC, ISO 8601), `decision` (approve / reject / edit) and, where given,
  `note`; an edit's parent carries `edit` (the new generation's id), the edit itself `edit_of`.
- `reason` is `approved`, a code from REJECT_REASONS, `other: FREE TEXT`, or `edited`.
- An edit is a new generation of run kind `edit` (model: the parent's model, backend `human`, source
  `review:NAME`), with `generation_meta.parent_id/edited_by/edited_at` set. The parent gets the reviewer's
  `edited` verdict (not passed: the edit supersedes it) and the edit the reviewer's approval. The edit's id is a
  content hash of its parent and text, so the same edit twice, or an import of it, adds nothing twice.
- The generation, the link and both verdicts commit in one transaction: a crash leaves all or none.
- A decision is one reviewer at one time: a decision whose reviewer and time a sample already carries is not
  added again, so importing a file twice (or a file exported from this catalog) adds nothing.
"""
from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from catalogs.calibration import HUMAN, REJECT_REASONS
from catalogs.errors import UserError
from catalogs.ids import canonical_json, content_hash, generation_id, run_id
from catalogs.store import Catalog, code_version, text_spans

DECISIONS = ("approve", "reject", "edit")
_REVIEWER = re.compile(r"^[\w][\w .@-]{0,63}$")


class ReviewError(UserError):
    """A decision that cannot be stored as given: the message says which sample or line, and the fix."""


def check_reviewer(name: str | None) -> str:
    name = (name or "").strip()
    if not name or not _REVIEWER.match(name):
        raise ReviewError(f"reviewer name {name!r}: use 1-64 letters, digits, spaces, '.', '_', '-' or '@' "
                          f"(no '#', which numbers a reviewer's later decisions); pass --reviewer NAME.")
    return name


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).replace(tzinfo=None)


@dataclass
class Decision:
    generation_id: str
    reviewer: str
    decision: str  # approve | reject | edit
    reason: str = "approved"
    note: str | None = None
    time: datetime | None = None
    judge_version: str | None = None  # None: the reviewer's next free version (NAME, NAME#2, ...)
    reasoning: str | None = None  # an edit's new texts
    answer: str | None = None
    edit_id: str | None = None  # an import names the edit's id; it must match the recomputed one
    origin: str = ""  # where the decision came from, for error messages (a page action, FILE:LINE)


def reject_reason(code: str | None, note: str | None) -> str:
    """The stored reason: a code from the short list, or `other: FREE TEXT`."""
    code = (code or "").strip()
    note = (note or "").strip()
    if code in REJECT_REASONS:
        return code
    if code in ("", "other") and note:
        return "other: " + " ".join(note.split())[:500]
    raise ReviewError(f"a rejection needs a reason: one of {', '.join(REJECT_REASONS)}, or free text "
                      f"(key 6 on the page).")


@dataclass
class _Edit:
    decision: Decision
    parent: dict[str, Any]
    run_params: dict[str, Any]
    run_id: str
    new_id: str
    row: dict[str, Any]


def _parents(catalog: Catalog, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    import pyarrow as pa

    with catalog.connect() as con:
        con.register("wanted", pa.table({"generation_id": list(dict.fromkeys(ids))}))
        cur = con.execute("SELECT g.generation_id, g.prompt_id, g.run_id, g.shard, g.shard_row, g.finish_reason, "
                          "r.model, p.kind FROM generation_meta g SEMI JOIN wanted USING (generation_id) "
                          "JOIN prompts p USING (prompt_id) LEFT JOIN runs r USING (run_id)")
        cols = [d[0] for d in cur.description]
        found = {r[0]: dict(zip(cols, r)) for r in cur.fetchall()}
        for d in found.values():
            if d["shard"] is not None:
                d.update(catalog.read_text(con, d["shard"], d["shard_row"]))
    return found


def _plan_edit(d: Decision, parent: dict[str, Any]) -> _Edit:
    reasoning = (d.reasoning or "").strip()
    answer = (d.answer or "").strip()
    where = d.origin or d.generation_id
    if not reasoning and (parent["reasoning"].strip() or parent["kind"] == "reasoning"):
        raise ReviewError(f"{where}: the edit empties the reasoning of {d.generation_id}. A reasoning sample keeps "
                          f"its chain of thought: restore it (Esc cancels the edit), or reject the sample instead.")
    if not answer:
        raise ReviewError(f"{where}: the edit empties the summary/answer of {d.generation_id}; write one, or reject "
                          f"the sample instead.")
    if reasoning == parent["reasoning"].strip() and answer == parent["answer"].strip():
        raise ReviewError(f"{where}: the edit changes nothing in {d.generation_id}; approve it instead, or change "
                          f"the text.")
    text = text_spans("", reasoning, answer)[0]
    params: dict[str, Any] = {"kind": "edit", "model": parent.get("model"), "backend": HUMAN,
                              "template": None, "template_version": None, "sampling": {},
                              "source": f"review:{d.reviewer}"}
    rid = run_id(params)
    new_id = generation_id(parent["prompt_id"], rid, "edit:" + content_hash(d.generation_id, text))
    if d.edit_id and d.edit_id != new_id:
        raise ReviewError(f"{where}: the edit's text does not hash to its generation id {d.edit_id} (got {new_id}); "
                          f"the file was changed after export. Export it again, or drop the edit's generation_id.")
    # A reviewer who rewrites a truncated text finishes it: the edit is a complete response.
    row = {"generation_id": new_id, "prompt_id": parent["prompt_id"], "run_id": rid, "sample_index": None,
           "seed": None, "text": "", "reasoning": reasoning, "answer": answer, "finish_reason": "stop"}
    return _Edit(d, parent, params, rid, new_id, row)


def apply(catalog: Catalog, decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """Validate every decision, then write them all in one transaction (all or nothing).

    Returns, per decision: its judge_version, the edit's id (edits), and the human verdicts other reviewers had
    already given that sample (so the page can say the second decision was kept beside the first).
    """
    if not decisions:
        return []
    parents = _parents(catalog, [d.generation_id for d in decisions])
    edits: dict[int, _Edit] = {}
    for i, d in enumerate(decisions):
        check_reviewer(d.reviewer)
        if d.decision not in DECISIONS:
            raise ReviewError(f"{d.origin or d.generation_id}: decision {d.decision!r}; use one of "
                              f"{', '.join(DECISIONS)}.")
        if d.generation_id not in parents:
            raise ReviewError(f"{d.origin or 'decision'}: no generation {d.generation_id} in catalog {catalog.root}; "
                              f"import decisions into a catalog that holds the same generations.")
        if d.decision == "edit":
            edits[i] = _plan_edit(d, parents[d.generation_id])
        d.time = d.time or now_utc()
    batch = catalog.stage_generations([e.row for e in edits.values()]) if edits else None
    results: list[dict[str, Any]] = []
    try:
        with catalog.transaction() as con:
            for e in edits.values():
                p = e.run_params
                con.execute("INSERT OR IGNORE INTO runs (run_id, kind, model, backend, template, "
                            "template_version, sampling, recipe, code_version, source) VALUES (?,?,?,?,?,?,?,?,?,?)",
                            [e.run_id, p["kind"], p["model"], p["backend"], None, None,
                             canonical_json({}), canonical_json({}), code_version(), p["source"]])
            if batch is not None:
                # The catalog's own commit path for generations: shard moved into place in this transaction.
                catalog.commit_staged(con, [batch])
            for i, d in enumerate(decisions):
                results.append(_write(con, d, edits.get(i)))
    finally:
        if batch is not None:
            shutil.rmtree(batch.shard_path.parent, ignore_errors=True)
    return results


def _write(con: Any, d: Decision, edit: _Edit | None) -> dict[str, Any]:
    assert d.time is not None  # apply() stamps every decision before writing it
    prior = [json.loads(r[0] or "{}") | {"passed": r[1], "reason": r[2], "judge_version": r[3]}
             for r in con.execute("SELECT details, passed, reason, judge_version FROM verdicts "
                                  "WHERE generation_id = ? AND judge = ? ORDER BY created_at",
                                  [d.generation_id, HUMAN]).fetchall()]
    details: dict[str, Any] = {"reviewer": d.reviewer, "time": iso(d.time), "decision": d.decision}
    others = [{"reviewer": p.get("reviewer"), "decision": p.get("decision"), "reason": p["reason"],
               "time": p.get("time")} for p in prior if p.get("reviewer") != d.reviewer]
    same = [p for p in prior if p.get("reviewer") == d.reviewer and p.get("time") == details["time"]]
    if same:  # a decision is one reviewer at one time: importing it again adds nothing
        return {"generation_id": d.generation_id, "judge_version": same[0]["judge_version"], "added": False,
                "edit_id": edit.new_id if edit else None, "others": others}
    if d.note:
        details["note"] = d.note
    if d.decision == "approve":
        passed, reason = True, "approved"
    elif d.decision == "reject":
        passed, reason = False, d.reason
    else:
        assert edit is not None  # apply() plans an edit for every edit decision
        passed, reason = False, "edited"
        details["edit"] = edit.new_id
        con.execute("UPDATE generation_meta SET parent_id = ?, edited_by = ?, edited_at = ? "
                    "WHERE generation_id = ? AND parent_id IS NULL",
                    [d.generation_id, d.reviewer, d.time, edit.new_id])
    version = d.judge_version or _next_version(con, d.generation_id, d.reviewer)
    added = _insert(con, d.generation_id, version, passed, reason, details, d.time)
    if edit is not None:
        # Keyed by the reviewer alone: importing the same edit again adds no second approval.
        _insert(con, edit.new_id, d.reviewer, True, "approved",
                {"reviewer": d.reviewer, "time": iso(d.time), "decision": "approve", "edit_of": d.generation_id},
                d.time)
    return {"generation_id": d.generation_id, "judge_version": version, "added": added,
            "edit_id": edit.new_id if edit else None, "others": others}


def _next_version(con: Any, gid: str, reviewer: str) -> str:
    taken = {r[0] for r in con.execute("SELECT judge_version FROM verdicts WHERE generation_id = ? AND judge = ?",
                                       [gid, HUMAN]).fetchall()}
    version, n = reviewer, 1
    while version in taken:
        n += 1
        version = f"{reviewer}#{n}"
    return version


def _insert(con: Any, gid: str, version: str, passed: bool, reason: str, details: dict[str, Any],
            at: datetime) -> bool:
    before = con.execute("SELECT count(*) FROM verdicts").fetchone()[0]
    # created_at is the decision's own time, so an imported decision keeps its place in "newest counts".
    con.execute("INSERT OR IGNORE INTO verdicts (generation_id, judge, judge_version, score, passed, reason, "
                "details, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [gid, HUMAN, version, 1.0 if passed else 0.0, passed, reason, canonical_json(details), at])
    return con.execute("SELECT count(*) FROM verdicts").fetchone()[0] > before


# ---------------------------------------------------------------------------------------------- JSONL
def export_decisions(catalog: Catalog, path: Path) -> int:
    """Every human decision as one JSON line, oldest first; an edit carries its new texts.

    The approval an edit gets from its own author is implied by the edit, so it is not a line of its own.
    """
    with catalog.connect() as con:
        rows = con.execute(
            "SELECT v.generation_id, v.judge_version, v.passed, v.reason, v.details, g.shard, g.shard_row "
            "FROM verdicts v LEFT JOIN generation_meta g "
            "ON g.generation_id = json_extract_string(v.details, '$.edit') "
            "WHERE v.judge = ? AND json_extract_string(v.details, '$.edit_of') IS NULL "
            "ORDER BY v.created_at, v.generation_id, v.judge_version", [HUMAN]).fetchall()
        lines = []
        for gid, version, passed, reason, details_json, shard, shard_row in rows:
            details = json.loads(details_json or "{}")
            rec: dict[str, Any] = {"generation_id": gid, "reviewer": details.get("reviewer"),
                                   "judge_version": version, "decision": details.get("decision"),
                                   "passed": bool(passed), "reason": reason, "time": details.get("time")}
            if details.get("note"):
                rec["note"] = details["note"]
            if details.get("edit"):
                text = catalog.read_text(con, shard, shard_row)
                rec["edit"] = {"generation_id": details["edit"], "reasoning": text["reasoning"],
                               "answer": text["answer"]}
            lines.append(json.dumps(rec, ensure_ascii=False, sort_keys=True))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    tmp.replace(path)  # never a half-written export under the real name
    return len(lines)


def read_decisions(path: Path) -> list[Decision]:
    """Parse and check a decisions file; the first bad line stops it with FILE:LINE and the fix."""
    if not path.exists():
        raise ReviewError(f"{path}: no such file.")
    out: list[Decision] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            where = f"{path}:{n}"
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ReviewError(f"{where}: not JSON ({exc.msg} at column {exc.colno}); one decision per line, as "
                                  f"`r1f review --export` writes.") from None
            if not isinstance(rec, dict):
                raise ReviewError(f"{where}: a decision is a JSON object, got {type(rec).__name__}.")
            missing = [k for k in ("generation_id", "reviewer", "decision", "time") if not rec.get(k)]
            if missing:
                raise ReviewError(f"{where}: missing field {missing[0]!r}; each line needs generation_id, reviewer, "
                                  f"decision (approve/reject/edit) and time.")
            decision = rec["decision"]
            if decision not in DECISIONS:
                raise ReviewError(f"{where}: field 'decision' is {decision!r}; use one of {', '.join(DECISIONS)}.")
            try:
                at = parse_time(str(rec["time"]))
            except ValueError:
                raise ReviewError(f"{where}: field 'time' {rec['time']!r} is not an ISO 8601 time "
                                  f"(e.g. 2026-01-31T12:00:00Z).") from None
            edit = rec.get("edit") or {}
            if decision == "edit" and not isinstance(edit, dict):
                raise ReviewError(f"{where}: field 'edit' must be an object with reasoning and answer.")
            reason = rec.get("reason") or ("approved" if decision == "approve" else "edited")
            if decision == "reject":
                reason = reason if reason in REJECT_REASONS or reason.startswith("other: ") else \
                    reject_reason("other", reason)
            try:
                reviewer = check_reviewer(rec["reviewer"])
            except ReviewError as exc:
                raise ReviewError(f"{where}: {exc}") from None
            out.append(Decision(
                generation_id=str(rec["generation_id"]), reviewer=reviewer, decision=decision, reason=reason,
                note=rec.get("note"), time=at, judge_version=rec.get("judge_version") or None,
                reasoning=edit.get("reasoning"), answer=edit.get("answer"),
                edit_id=edit.get("generation_id"), origin=where))
    return out


def import_decisions(catalog: Catalog, path: Path) -> dict[str, int]:
    decisions = read_decisions(path)
    results = apply(catalog, decisions)
    return {"lines": len(decisions), "added": sum(r["added"] for r in results),
            "edits": sum(1 for d in decisions if d.decision == "edit")}
