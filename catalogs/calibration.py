"""How right are the judges: a stratified sample for people to decide, and the estimates drawn from it.

`draw` picks, for one judge, samples it passed and samples it failed, per source and domain (the strata), and
records each drawn generation with its stratum's size in `calibration_draws`. People decide them on the review
page (`r1f review --calibrate JUDGE`); their decisions are verdicts of judge `human`. `figures` then estimates,
weighting every stratum by its size (a stratified estimator, so a sample that over-draws the judge's failures
still estimates the whole population):
- the judge's precision (good among what it passed) and recall (what it passed among the good), per source and
  domain and overall, each with a Wilson interval;
- agreement with every other judge that decided the same generations, as a confusion table;
- how many good generations the release (or the judges and filters, for the whole catalog) dropped, and how many
  bad ones it kept.

Which human decisions count for a judge: an approval is a good sample for every judge. A rejection is a bad
sample for the judges its reason concerns (REASON_CONCERNS; a judge that no reason names is concerned by every
listed reason) and says nothing about the others: a sample rejected as "mixes languages" may well have the right
answer. An edit, or a rejection in free text, says nothing about any one judge; for the release's figures every
rejection and edit is a bad sample.

Intervals: a stratified proportion has no binomial count, so its Wilson interval uses Kish's effective sample
size, p(1-p)/variance, with the finite-population correction (a stratum decided whole is known exactly).
Counts are the proportion's interval times the population. Recall is a ratio of two stratified totals; its
variance is the usual linearisation.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import UserError
from .ids import content_hash

if TYPE_CHECKING:
    from .store import Catalog

HUMAN = "human"
# The review page's reject reasons (keys 1-5); anything else is free text, stored as `other: TEXT`.
REJECT_REASONS: dict[str, str] = {
    "wrong_answer": "wrong answer",
    "flawed_reasoning": "reasoning is wrong or skips steps",
    "language_mixing": "mixes languages",
    "unreadable": "unreadable: rambling, repeated, badly formatted",
    "incomplete": "incomplete or truncated",
}
# Which judges each reject reason concerns: a rejection for that reason is a sample those judges should fail.
REASON_CONCERNS: dict[str, tuple[str, ...]] = {
    "wrong_answer": ("math_accuracy", "code", "llm_judge"),
    "flawed_reasoning": ("llm_judge",),
    "language_mixing": ("language_consistency",),
    "unreadable": ("format",),
    "incomplete": ("format",),
}
Z95 = 1.959963984540054
DEFAULT_SAMPLE = 200

# The newest human decision per generation (an edit's own approval is implied by the edit, not a decision).
NEWEST_HUMAN = (f"SELECT generation_id, passed, reason, json_extract_string(details, '$.decision') AS decision "
                f"FROM verdicts WHERE judge = '{HUMAN}' AND json_extract_string(details, '$.edit_of') IS NULL "
                "QUALIFY row_number() OVER (PARTITION BY generation_id ORDER BY created_at DESC, judge_version DESC) = 1")


def newest_verdicts(judge_sql: str) -> str:
    """Each generation's newest verdict of the judges `judge_sql` selects (a predicate over `judge`)."""
    return (f"SELECT generation_id, judge, judge_version, passed FROM verdicts WHERE {judge_sql} "
            "QUALIFY row_number() OVER (PARTITION BY generation_id, judge ORDER BY created_at DESC, "
            "judge_version DESC) = 1")


class CalibrationError(UserError):
    """A calibration that cannot be drawn or read as asked; the message says why and the fix."""


def concerns(reason: str, judge: str) -> bool:
    """Whether a rejection for `reason` says the sample is one `judge` should fail."""
    if reason not in REASON_CONCERNS:
        return False  # free text or an edit: no one judge is named
    named = {j for js in REASON_CONCERNS.values() for j in js}
    return judge in REASON_CONCERNS[reason] or judge not in named


def wilson(p: float, n: float, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion p observed over n (n may be an effective, fractional size)."""
    if n <= 0:
        return 0.0, 1.0
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


# ---------------------------------------------------------------------------------------------- drawing
def _allocate(total: int, sizes: list[int]) -> list[int]:
    """Split `total` draws (at most sum(sizes)) over strata in proportion to their sizes, at least one each
    where the total allows, never more than a stratum holds."""
    n = [0] * len(sizes)
    for i in sorted(range(len(sizes)), key=lambda i: -sizes[i]):  # one each first, so every stratum is seen
        if total - sum(n) > 0 and sizes[i]:
            n[i] = 1
    while (left := total - sum(n)) > 0:
        room = {i: sizes[i] - n[i] for i in range(len(sizes)) if n[i] < sizes[i]}
        quotas = {i: left * r / sum(room.values()) for i, r in room.items()}
        adds = {i: min(room[i], math.floor(q)) for i, q in quotas.items()}
        if not any(adds.values()):  # fewer draws left than strata with room: the largest quotas get one each
            adds = {i: 1 for i in sorted(room, key=lambda i: (-quotas[i], i))[:left]}
        for i, a in adds.items():
            n[i] += a
    return n


def draw(con: Any, judge: str, sample: int | None, seed: int) -> dict[str, Any]:
    """Draw (or find again) the stratified sample for `judge`; `con` is a writing connection in a transaction.

    Half the draws go to samples the judge passed and half to those it failed (the failures are where a rule
    judge's misses hide), each half spread over source and domain in proportion to the strata's sizes.
    """
    ran = [r[0] for r in con.execute("SELECT DISTINCT judge FROM verdicts ORDER BY 1").fetchall()]
    if judge == HUMAN or judge not in ran:
        machine = [j for j in ran if j != HUMAN]
        raise CalibrationError(
            f"judge {judge!r} never ran in this catalog, so there is nothing of it to calibrate; run it first "
            f"(`r1f judge RECIPE` with `judges: [{judge}]`), or calibrate one that ran: "
            f"{', '.join(machine) or 'none yet'}.")
    strata = con.execute(f"""
        SELECT p.source, p.domain, v.passed, count(*) AS n, string_agg(DISTINCT v.judge_version, ', ') AS versions
        FROM ({newest_verdicts('judge = ?')}) v JOIN generation_meta g USING (generation_id)
        JOIN prompts p USING (prompt_id) GROUP BY ALL ORDER BY ALL""", [judge]).fetchall()
    pool = sum(r[3] for r in strata)
    if sample is not None and sample < 1:
        raise CalibrationError(f"--sample {sample}: give a size of 1 or more.")
    if sample is not None and sample > pool:
        raise CalibrationError(f"--sample {sample} is larger than the pool: judge {judge!r} decided {pool} "
                               f"generations in this catalog; give --sample {pool} or less.")
    size = sample if sample is not None else min(DEFAULT_SAMPLE, pool)
    versions = ", ".join(sorted({v for r in strata for v in str(r[4]).split(", ")}))
    draw_id = "cal_" + content_hash("calibration", judge, size, int(seed), [list(r[:4]) for r in strata])
    if not con.execute("SELECT 1 FROM calibration_draws WHERE draw_id = ? LIMIT 1", [draw_id]).fetchall():
        halves = [[i for i, r in enumerate(strata) if r[2]], [i for i, r in enumerate(strata) if not r[2]]]
        totals = [sum(strata[i][3] for i in h) for h in halves]
        want = [min(totals[0], size - size // 2), min(totals[1], size // 2)]
        spare = size - sum(want)  # one half is smaller than its share: the other takes the rest
        want = [want[0] + min(spare, totals[0] - want[0]), want[1] + spare - min(spare, totals[0] - want[0])]
        counts = [0] * len(strata)
        for half, n in zip(halves, want):
            for i, k in zip(half, _allocate(n, [strata[i][3] for i in half])):
                counts[i] = k
        for (source, domain, passed, n, _), k in zip(strata, counts):
            if not k:
                continue
            con.execute(f"""
                INSERT INTO calibration_draws (draw_id, judge, judge_version, seed, generation_id, source, domain,
                                               judge_passed, stratum_size)
                SELECT ?, ?, ?, ?, v.generation_id, p.source, p.domain, v.passed, ?
                FROM ({newest_verdicts('judge = ?')}) v JOIN generation_meta g USING (generation_id)
                JOIN prompts p USING (prompt_id)
                WHERE p.source IS NOT DISTINCT FROM ? AND p.domain IS NOT DISTINCT FROM ? AND v.passed = ?
                ORDER BY md5(? || ':' || v.generation_id) LIMIT ?""",
                        [draw_id, judge, versions, int(seed), n, judge, source, domain, passed,
                         f"{draw_id}:{int(seed)}", k])
    rows = con.execute("SELECT judge_passed, count(*), count(DISTINCT (source, domain)) FROM calibration_draws "
                       "WHERE draw_id = ? GROUP BY 1", [draw_id]).fetchall()
    by = {bool(r[0]): r for r in rows}
    return {"draw_id": draw_id, "judge": judge, "seed": int(seed), "pool": pool,
            "drawn": sum(r[1] for r in rows), "passed": by[True][1] if True in by else 0,
            "failed": by[False][1] if False in by else 0, "strata": len(strata)}


# ---------------------------------------------------------------------------------------------- estimating
@dataclass
class Stratum:
    source: str | None
    domain: str | None
    passed: bool
    size: int  # generations in the stratum when drawn
    decided: int = 0  # drawn and decided, with evidence for the question asked
    hits: int = 0  # of those, how many have the property estimated

    @property
    def p(self) -> float:
        return self.hits / self.decided

    @property
    def var_p(self) -> float:
        """Variance of the stratum's proportion, with the finite-population correction."""
        if self.decided == 0:
            return 0.0
        fpc = (self.size - self.decided) / (self.size - 1) if self.size > 1 else 0.0
        return self.p * (1 - self.p) / self.decided * max(fpc, 0.0)


def _interval(p: float, var: float, n_decided: int, population: int) -> dict[str, Any]:
    n_eff = p * (1 - p) / var if var > 0 else float(population if n_decided >= population else n_decided)
    low, high = wilson(p, min(n_eff, float(population)))
    return {"estimate": round(p, 4), "low": round(low, 4), "high": round(high, 4), "decided": n_decided}


def proportion(strata: Iterable[Stratum]) -> dict[str, Any] | None:
    """A stratified proportion (the share with the property), weighting each decided stratum by its size."""
    seen = [s for s in strata if s.decided]
    total = sum(s.size for s in seen)
    if not total:
        return None
    p = sum(s.size * s.p for s in seen) / total
    var = sum((s.size / total) ** 2 * s.var_p for s in seen)
    return _interval(p, var, sum(s.decided for s in seen), total)


def count(strata: list[Stratum]) -> dict[str, Any] | None:
    """A stratified count of generations with the property, over every stratum (undecided ones left out)."""
    got = proportion(strata)
    if got is None:
        return None
    population = sum(s.size for s in strata if s.decided)
    return {"estimate": round(got["estimate"] * population, 1), "low": round(got["low"] * population, 1),
            "high": round(got["high"] * population, 1), "decided": got["decided"], "of": population}


def recall(good: Iterable[Stratum]) -> dict[str, Any] | None:
    """What the judge passed among the good: a ratio of two stratified totals (strata hold the good counts)."""
    seen = [s for s in good if s.decided]
    tp = sum(s.size * s.p for s in seen if s.passed)
    fn = sum(s.size * s.p for s in seen if not s.passed)
    if tp + fn <= 0 or not any(s.passed for s in seen) or not any(not s.passed for s in seen):
        return None  # both sides of the judge must be decided to say what it misses
    var_tp = sum(s.size ** 2 * s.var_p for s in seen if s.passed)
    var_fn = sum(s.size ** 2 * s.var_p for s in seen if not s.passed)
    r = tp / (tp + fn)
    var = (fn ** 2 * var_tp + tp ** 2 * var_fn) / (tp + fn) ** 4
    decided_good = sum(s.hits for s in seen)
    return _interval(r, var, decided_good, max(decided_good, round(tp + fn)))


def _latest_draws(con: Any, judge: str | None) -> list[tuple[str, str]]:
    rows = con.execute("SELECT judge, arg_max(draw_id, created_at) FROM calibration_draws "
                       + ("WHERE judge = ? " if judge else "") + "GROUP BY 1 ORDER BY 1",
                       [judge] if judge else []).fetchall()
    return [(r[0], r[1]) for r in rows]


def figures(con: Any, judge: str | None = None, kept_sql: str | None = None) -> list[dict[str, Any]]:
    """Per calibrated judge (its newest draw): precision, recall, agreement, and the release's misses.

    `kept_sql` selects the generation_ids the release kept; None: those every machine judge and filter passed.
    `con` reads the catalog's tables (a reader, or a connection to the catalog).
    """
    out = []
    if kept_sql is None:
        kept_sql = (f"SELECT generation_id FROM ({newest_verdicts(f'judge <> {_lit(HUMAN)}')}) GROUP BY 1 "
                    f"HAVING bool_and(passed) EXCEPT SELECT generation_id FROM filter_decisions "
                    f"QUALIFY row_number() OVER (PARTITION BY generation_id, filter ORDER BY created_at DESC, "
                    f"filter_version DESC) = 1 AND NOT passed")
    for name, draw_id in _latest_draws(con, judge):
        rows = con.execute(f"""
            SELECT d.source, d.domain, d.judge_passed, d.stratum_size, h.decision, h.reason, h.passed,
                   d.generation_id IN ({kept_sql}) AS kept, d.generation_id
            FROM calibration_draws d LEFT JOIN ({NEWEST_HUMAN}) h USING (generation_id)
            WHERE d.draw_id = ? ORDER BY d.generation_id""", [draw_id]).fetchall()
        seed, versions = con.execute("SELECT any_value(seed), any_value(judge_version) FROM calibration_draws "
                                     "WHERE draw_id = ?", [draw_id]).fetchone()
        out.append(_judge_figures(con, name, draw_id, seed, versions, rows))
    return out


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _strata(rows: list[tuple[Any, ...]], key: Any, verdict: Any) -> list[Stratum]:
    """Strata over `rows` grouped by `key(row)`; `verdict(row)` is True/False (has the property or not) or None
    (no evidence)."""
    found: dict[Any, Stratum] = {}
    for r in rows:
        k = (r[0], r[1], bool(r[2]))
        if key(r) is None:
            continue
        s = found.setdefault((key(r), k), Stratum(r[0], r[1], bool(r[2]), int(r[3])))
        v = verdict(r)
        if v is not None:
            s.decided += 1
            s.hits += bool(v)
    return list(found.values())


def _judge_figures(con: Any, judge: str, draw_id: str, seed: int, versions: str,
                   rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    def good_for_judge(r: tuple[Any, ...]) -> bool | None:
        if r[4] == "approve":
            return True
        if r[4] == "reject" and concerns(str(r[5]), judge):
            return False
        return None

    def good_for_release(r: tuple[Any, ...]) -> bool | None:
        return None if r[4] is None else r[4] == "approve"

    def pr(rows_: list[tuple[Any, ...]]) -> dict[str, Any]:
        everything = _strata(rows_, lambda r: 0, good_for_judge)
        return {"precision": proportion([s for s in everything if s.passed]), "recall": recall(everything),
                "drawn": len(rows_), "decided": sum(s.decided for s in everything)}

    groups = sorted({(r[0], r[1]) for r in rows}, key=lambda g: (str(g[0]), str(g[1])))
    by_group = [{"source": g[0], "domain": g[1], **pr([r for r in rows if (r[0], r[1]) == g])} for g in groups]
    population = sum({(r[0], r[1], r[2]): r[3] for r in rows}.values())

    def release_count(prop: Any) -> dict[str, Any] | None:
        return count(_strata(rows, lambda r: 0, lambda r: None if good_for_release(r) is None else prop(r)))

    return {"judge": judge, "versions": versions, "draw_id": draw_id, "seed": seed, "population": population,
            **pr(rows),
            "by_source_domain": by_group,
            "dropped_good": release_count(lambda r: good_for_release(r) and not r[7]),
            "kept_bad": release_count(lambda r: not good_for_release(r) and bool(r[7])),
            "agreement": _agreement(con, judge, draw_id)}


def _agreement(con: Any, judge: str, draw_id: str) -> list[dict[str, Any]]:
    """Against every other machine judge: the confusion table over the generations both decided, with how many
    of each cell people decided and found good (from this judge's draw)."""
    rows = con.execute(f"""
        SELECT b.judge AS other, a.passed AS this_passed, b.passed AS other_passed, count(*) AS generations,
               count(h.generation_id) FILTER (WHERE d.generation_id IS NOT NULL) AS decided,
               count(*) FILTER (WHERE d.generation_id IS NOT NULL AND h.decision = 'approve') AS good
        FROM ({newest_verdicts('judge = ?')}) a
        JOIN ({newest_verdicts(f'judge <> ? AND judge <> {_lit(HUMAN)}')}) b USING (generation_id)
        LEFT JOIN (SELECT generation_id FROM calibration_draws WHERE draw_id = ?) d USING (generation_id)
        LEFT JOIN ({NEWEST_HUMAN}) h USING (generation_id)
        GROUP BY ALL ORDER BY ALL""", [judge, judge, draw_id]).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for other, this_passed, other_passed, n, decided, good in rows:
        t = out.setdefault(other, {"judge": judge, "other": other, "both_pass": 0, "only_this_passes": 0,
                                   "only_other_passes": 0, "both_fail": 0, "agreement": None, "human_good": {}})
        cell = {(True, True): "both_pass", (True, False): "only_this_passes", (False, True): "only_other_passes",
                (False, False): "both_fail"}[(bool(this_passed), bool(other_passed))]
        t[cell] = n
        if decided:
            t["human_good"][cell] = f"{good}/{decided}"
    for t in out.values():
        total = t["both_pass"] + t["only_this_passes"] + t["only_other_passes"] + t["both_fail"]
        t["agreement"] = round((t["both_pass"] + t["both_fail"]) / total, 4) if total else None
    return list(out.values())


def fmt_interval(x: dict[str, Any] | None, percent: bool = True) -> str:
    """`80.0% (72.1–86.3%, 60 decided)`; a count as `40 (31–52 of 250)`; `–` where nothing was decided."""
    if not x:
        return "– (not enough decisions)"
    if percent:
        return (f"{100 * x['estimate']:.1f}% ({100 * x['low']:.1f}–{100 * x['high']:.1f}%, "
                f"{x['decided']} decided)")
    return f"{x['estimate']:,.0f} ({x['low']:,.0f}–{x['high']:,.0f} of {x['of']:,}, {x['decided']} decided)"


def summary_rows(figs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One plain row per judge and per source/domain: what `r1f calibration`, the card and the report print."""
    out = []
    for f in figs:
        out.append({"judge": f["judge"], "source": "all", "domain": "all", "drawn": f["drawn"],
                    "decided": f["decided"], "precision": fmt_interval(f["precision"]),
                    "recall": fmt_interval(f["recall"])})
        for g in f["by_source_domain"]:
            out.append({"judge": f["judge"], "source": g["source"], "domain": g["domain"], "drawn": g["drawn"],
                        "decided": g["decided"], "precision": fmt_interval(g["precision"]),
                        "recall": fmt_interval(g["recall"])})
    return out


def misses_rows(figs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"judge": f["judge"], "good samples dropped": fmt_interval(f["dropped_good"], percent=False),
             "bad samples kept": fmt_interval(f["kept_bad"], percent=False)} for f in figs]


def agreement_rows(figs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (", ".join(f"{c}: {v}" for c, v in t["human_good"].items()) or "–") if k == "human_good" else t[k]
             for k in ("judge", "other", "both_pass", "only_this_passes", "only_other_passes", "both_fail",
                       "agreement", "human_good")} for f in figs for t in f["agreement"]]


NO_CALIBRATION = ("No calibration yet: no one has checked the judges against human decisions. Run "
                  "`r1f review --calibrate JUDGE` (e.g. math_accuracy), decide the samples on the page, then "
                  "`r1f calibration`.")


# ---------------------------------------------------------------------------------------------- the catalog
def draw_sample(catalog: Catalog, judge: str, sample: int | None, seed: int) -> dict[str, Any]:
    """Draw the calibration sample of `judge` in one transaction (the same judge, size, seed and verdicts give
    the same draw again, so a second session continues the first)."""
    with catalog.transaction() as con:
        return draw(con, judge, sample, seed)


def read_figures(catalog: Catalog, judge: str | None = None, release: str | None = None) -> list[dict[str, Any]]:
    """`figures` from the catalog; `release` counts as kept what that release holds."""
    with catalog.reader() as con:
        if release and not con.execute("SELECT 1 FROM releases WHERE name = ?", [release]).fetchall():
            raise CalibrationError(f"--release {release!r}: no such release; `r1f show` lists the releases.")
        if judge:
            drawn = [r[0] for r in con.execute("SELECT DISTINCT judge FROM calibration_draws ORDER BY 1").fetchall()]
            if judge not in drawn:
                raise CalibrationError(f"judge {judge!r} has no calibration in {catalog.root}; draw one with "
                                       f"`r1f review --calibrate {judge}` and decide its samples (calibrated so "
                                       f"far: {', '.join(drawn) or 'none'}).")
        kept = f"SELECT generation_id FROM release_members WHERE release_name = {_lit(release)}" if release else None
        return figures(con, judge, kept)
