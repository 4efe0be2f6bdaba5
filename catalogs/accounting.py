"""Yield accounting: what each run used (tokens in and out, engine seconds, money) and what each accepted sample
cost, by source, domain and difficulty (the prompt's pass rate in rejection sampling).

`run_usage` holds one row per session of a run. A generation's cost is its own tokens at its run's price (the
newest priced session's): the cost of the samples kept, and of the ones the judges or filters dropped, adds up
to what the runs paid. `r1f stats --cost`, the report and the card read these figures from here alone.
"""
from __future__ import annotations

from typing import Any


# One row per generation with what decides its fate. For each judge (filter), the newest verdict
# (decision) counts: re-judging with a new version or new thresholds supersedes the old one. An eval's samples
# (`r1f eval`: answers to benchmark problems) are never candidates: training data must not hold the test set.
CANDIDATES_SQL = """
SELECT g.generation_id, g.prompt_id, g.run_id, g.sample_index, g.finish_reason, g.completion_tokens,
       g.text_chars, g.reasoning_chars, g.answer_chars, p.source, p.kind, p.domain, p.language, r.model,
       coalesce(v.judged, 0) AS judged, coalesce(v.judges_failed, 0) AS judges_failed,
       coalesce(f.filtered, 0) AS filtered, coalesce(f.filters_failed, 0) AS filters_failed,
       v.failed_judges, f.failed_filters, coalesce(v.passed_judges, []) AS passed_judges
FROM generation_meta g
JOIN prompts p USING (prompt_id)
LEFT JOIN runs r USING (run_id)
LEFT JOIN (
  SELECT generation_id, count(*) AS judged, sum((NOT passed)::INT) AS judges_failed,
         list(judge || ':' || reason ORDER BY judge) FILTER (WHERE NOT passed) AS failed_judges,
         list(judge ORDER BY judge) FILTER (WHERE passed) AS passed_judges
  FROM (SELECT * FROM verdicts
        QUALIFY row_number() OVER (PARTITION BY generation_id, judge ORDER BY created_at DESC, judge_version DESC) = 1)
  GROUP BY generation_id) v USING (generation_id)
LEFT JOIN (
  SELECT generation_id, count(*) AS filtered, sum((NOT passed)::INT) AS filters_failed,
         list(filter || ':' || split_part(reason, ':', 1) ORDER BY filter) FILTER (WHERE NOT passed) AS failed_filters
  FROM (SELECT * FROM filter_decisions
        QUALIFY row_number() OVER (PARTITION BY generation_id, filter ORDER BY created_at DESC, filter_version DESC) = 1)
  GROUP BY generation_id) f USING (generation_id)
WHERE r.kind IS DISTINCT FROM 'eval'
"""

# Generations that passed every judge and filter they met (reasoning ones must have met a judge).
ACCEPTED = "(judges_failed = 0 AND filters_failed = 0 AND (judged > 0 OR kind = 'non_reasoning'))"
# A prompt's difficulty as rejection sampling measured it: the share of its samples that passed, in quarters.
PASS_RATE_BUCKET = ("CASE WHEN ps.pass_rate IS NULL THEN 'not sampled here' "
                    "ELSE ['0-25%', '25-50%', '50-75%', '75-100%'][least(floor(ps.pass_rate * 4)::INT, 3) + 1] END")
# Each priced generation's cost, at its run's price (the newest session that gave one).
GENERATION_COSTS = """
SELECT g.generation_id, g.run_id,
       (coalesce(g.prompt_tokens, 0) * u.price_in + coalesce(g.completion_tokens, 0) * u.price_out) / 1e6 AS cost
FROM generation_meta g JOIN (
  SELECT run_id, arg_max(price_input_per_mtok, created_at) AS price_in,
         arg_max(price_output_per_mtok, created_at) AS price_out
  FROM run_usage WHERE price_input_per_mtok IS NOT NULL GROUP BY run_id) u USING (run_id)
"""


def _rows(con: Any, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def cost_facts(con: Any, scope: str = "scope") -> dict[str, Any]:
    """Usage per run and cost per accepted sample over `scope` (a table or view with CANDIDATES_SQL's columns).

    Cost rows cover the generations of priced runs only; `filter_dropped` are samples every judge passed and a
    filter then dropped, and `filter_dropped_cost` what they cost.
    """
    usage = _rows(con, f"""
        SELECT run_id, any_value(backend) AS backend, count(*) AS sessions, sum(generations) AS generations,
               sum(tokens_in) AS tokens_in, sum(tokens_out) AS tokens_out, round(sum(engine_s), 3) AS engine_s,
               round(sum(gpu_s), 3) AS gpu_s, any_value(price_input_per_mtok) AS price_input_per_mtok,
               any_value(price_output_per_mtok) AS price_output_per_mtok, round(sum(cost), 6) AS cost
        FROM run_usage WHERE run_id IN (SELECT DISTINCT run_id FROM {scope}) GROUP BY run_id ORDER BY run_id""")
    con.execute(f"""CREATE OR REPLACE TEMP TABLE priced AS
        SELECT s.*, c.cost, {ACCEPTED} AS accepted_, judges_failed = 0 AND filters_failed > 0 AS filter_dropped_,
               {PASS_RATE_BUCKET} AS pass_rate_bucket
        FROM {scope} s JOIN ({GENERATION_COSTS}) c USING (generation_id)
        LEFT JOIN prompt_stats ps ON ps.prompt_id = s.prompt_id AND ps.run_id = s.run_id""")

    def by(column: str) -> list[dict[str, Any]]:
        return _rows(con, f"""
            SELECT {column}, count(*) AS generations, count(*) FILTER (WHERE accepted_) AS accepted,
                   round(sum(cost), 6) AS cost, round(sum(cost) / nullif(count(*) FILTER (WHERE accepted_), 0), 6)
                   AS cost_per_accepted, count(*) FILTER (WHERE filter_dropped_) AS filter_dropped,
                   round(coalesce(sum(cost) FILTER (WHERE filter_dropped_), 0), 6) AS filter_dropped_cost
            FROM priced GROUP BY ALL ORDER BY ALL""")

    total = by("'all' AS scope")
    return {"usage": usage, "total": total[0] if total and total[0]["generations"] else None,
            "by_source": by("source"), "by_domain": by("domain"), "by_pass_rate": by("pass_rate_bucket")}


NO_PRICE = ("No cost recorded: no run in scope had a price. Give API recipes `price_per_mtok: {input: ..., "
            "output: ...}` (per million tokens) and generate; tokens and engine seconds are recorded either way.")
