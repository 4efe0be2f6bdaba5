"""`r1f demo`: Mini-R1, the DeepSeek-R1 pipeline in miniature on this machine's CPU, with a model that learns.

1. a task world the project writes itself (arithmetic with exact answers, a held-out split, non-reasoning
   prompts with fixed answers), ingested into a fresh catalog;
2. a tiny base model trained from scratch on raw worked solutions and, in a tenth of its documents, the
   world's facts and greetings as plain text (no chat format);
3. R1-Zero: GRPO from the base with the rule rewards (accuracy, format), three seeds, held-out pass@1 before
   and after through `r1f eval`, each gain beside twice its standard error;
4. cold start: readable traces made by the R1-Zero model through the factory (few-shot prompting, and its own
   outputs rewritten into the readable pattern by a `rewrite` stage) beside hand-written ones, judged and
   filtered; SFT of the base on them;
5. reasoning RL with the language-consistency reward added;
6. rejection sampling through vLLM with the judges, the filters, and the paper's 3:1 reasoning mix;
7. distillation: a smaller student SFT'd on that release, against the same student trained by GRPO alone;
   then R1's stage 3 (SFT of the base on that release, 2 epochs), two reward models (trl's RewardTrainer on the
   world's preference pairs: helpfulness on the summary, harmlessness on the whole response) and stage 4 (GRPO
   from stage 3 over reasoning and non-reasoning prompts: rule rewards on the first, the reward models on the
   rest), with the non-reasoning prompts scored by exact match against the world's fixed answers;
8. a summary table, the pass@1 figure, the RL stages' reward and completion length per step (the paper's
   Figures 2 and 3), the HTML report of the release, and `r1f show` of one released sample with its whole lineage.

The demo itself writes the world and pretrains the two base models (step 2 and the student's base, at once: the
student in a second process); every other
stage is a stage of one pipeline file, OUT/pipeline.yaml, with its recipe under OUT/recipes/, run through
`r1f run` (pipelines.run.run_pipeline). The summary is read back from the catalog. Running it again in the same
folder reuses the pretrained bases (each keyed by the settings that make it), and the pipeline skips every stage
the catalog has done with the same recipe and inputs, so nothing is added twice. A folder holds one run: its key
(the whole config, the seed and thread count included, and the torch, transformers and trl versions) is in
OUT/mini-run.json, and another seed in the same folder is refused.
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from pipelines.run import set_torch
from r1f.mini.model import BASE, STUDENT, pretrain_apart
from r1f.mini.pipeline import COLD_ROWS, REPORT, Mini, MiniConfig, console, mini_torch, two_se
from r1f.mini.world import NON_REASONING


def run_demo(out: Path, *, quick: bool = False, seed: int = 0, threads: int = 1, keep: bool = True) -> Path:
    from catalogs import Catalog

    out = out.resolve()
    cfg = MiniConfig.quick(seed, threads) if quick else MiniConfig.full(seed, threads)
    Mini.claim(out, cfg)
    # A fixed number of torch threads (default one) and deterministic algorithms, for the pretraining here and,
    # through the pipeline file's `torch:` settings, every stage: the same seed and thread count give the same
    # numbers whatever the load. The tiny model gains little from a second thread: two OpenMP threads spinning
    # against other processes ran it 2.5x slower per step on a busy 2-core machine (0.7 s vs 0.27 s).
    set_torch(mini_torch(cfg))
    catalog = Catalog(out / "catalog", create=True)
    mini = Mini(out, cfg, catalog)
    console.rule(f"[bold]Mini-R1{' (quick)' if quick else ''}: seed {seed}, {threads} thread(s), key {mini.key}, "
                 f"output in {out}", align="left")

    files = mini.world()
    # The two bases pretrain at once where the cores allow (one thread each on a 2-core machine): the student in a
    # spawned process, the base here, each on the run's torch settings with its own seeds, so each is byte for byte
    # the model trained alone. The base takes longer; by its end the student is done.
    apart = (pretrain_apart(mini.model_dir("student-base"), files.pretrain, STUDENT, mini_torch(cfg),
                            steps=cfg.student_steps, seed=cfg.seed) if 2 * threads <= (os.cpu_count() or 1) else None)
    try:
        base = mini.base("base", cfg.base_steps, BASE)
        student = mini.base("student-base", cfg.student_steps, STUDENT, apart=apart)
    finally:
        if apart is not None:
            apart.stop()
    mini.write_pipeline(base, student)
    mini.run()

    mini.banner("8. the end")
    mini.results()
    console.print(mini.summary())
    summary = mini.write_results()
    gid = mini.trace()
    report = out / REPORT
    total = time.perf_counter() - mini.started
    gains, noise = mini.zero_gains, mini.zero_noise
    rows = {r.model: r for r in mini.rows if r.pass_at_1 is not None}  # the model's own row, not a data stage's
    console.rule("[bold]targets", align="left")
    console.print(f"whole demo: {total / 60:.1f} min (target < 15 min on a 2-core machine)")
    if gains:
        console.print(f"R1-Zero gain over the base: {mini.gains(gains, noise)} points (seeds {list(cfg.zero_seeds)}; "
                      f"target: every gain above twice its standard error, marked *)")
    kept = {r.stage: r.kept or 0 for r in mini.rows if r.stage in COLD_ROWS}
    if kept:
        made, whole = sum(kept.get(s, 0) for s in COLD_ROWS[:2]), sum(kept.values())
        console.print(f"cold start: {made} of {whole} traces model-made ({100 * made / max(whole, 1):.0f}%; "
                      f"target: at least half)")
    if "cold-start-sft" in rows and "reasoning-rl" in rows:
        cp, rp = rows["cold-start-sft"].pass_at_1 or 0, rows["reasoning-rl"].pass_at_1 or 0
        console.print(f"reasoning RL vs the cold-start model: held-out pass@1 {rp:.1f}% vs {cp:.1f}% "
                      f"({mini.gains([rp - cp], [mini.noise(cp, rp)])})")
    rs = next((r for r in mini.rows if r.stage.startswith("rejection")), None)
    if rs is not None:
        console.print(f"rejection sampling accept rate: {100 * (rs.accept_rate or 0):.0f}% (target: > 0)")
    if "student-base" in rows and "student-distilled" in rows:
        sb, sd = rows["student-base"].pass_at_1 or 0, rows["student-distilled"].pass_at_1 or 0
        console.print(f"distilled student {sd:.1f}% vs its base {sb:.1f}%: {mini.gains([sd - sb], [mini.noise(sb, sd)])}"
                      f" points (target: beats it)")
        if "student-grpo" in rows:
            sg = rows["student-grpo"].pass_at_1 or 0
            console.print(f"distilled student vs the student by GRPO alone ({sg:.1f}%): "
                          f"{mini.gains([sd - sg], [mini.noise(sg, sd)])} points")
    if "cold-start-sft" in rows and "all-scenarios-rl" in rows:
        c, f = rows["cold-start-sft"], rows["all-scenarios-rl"]
        cp, fp, ce, fe = c.pass_at_1 or 0, f.pass_at_1 or 0, c.exact_match or 0, f.exact_match or 0
        chat_n = len(NON_REASONING) * cfg.eval_k
        console.print(f"stage 4 vs the cold-start model: held-out pass@1 {fp:.1f}% vs {cp:.1f}% "
                      f"({mini.gains([fp - cp], [mini.noise(cp, fp)])}), non-reasoning exact match {fe:.1f}% vs "
                      f"{ce:.1f}% ({mini.gains([fe - ce], [two_se(ce, fe, chat_n)])}) (target: beats it on both)")
    console.print(f"catalog: {out / 'catalog'}; summary: {summary}; report: {report}; traced sample: {gid}")
    console.print(f"figures: {', '.join(map(str, mini.figures))}")
    console.print(f"pipeline: {mini.pipeline}; rerun one stage and those after it: [bold]{mini.command()} --from "
                  f"STAGE[/]; its stages: [bold]r1f status --catalog {out / 'catalog'}[/]")
    console.print(f"Try: [bold]r1f sql \"SELECT name, members FROM releases\" --catalog {out / 'catalog'}[/]")
    if not keep:
        shutil.rmtree(out)
    return out
