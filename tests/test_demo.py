"""`r1f demo --quick`: Mini-R1's whole path, shortened (fewer problems and steps, one R1-Zero seed), run as a user
runs it: the demo pretrains the bases, then runs its pipeline file through `r1f run`. Every stage must succeed, or
this test fails; the numbers are too small to mean much and are not asserted, except what holds by construction
(rejection sampling keeps something, the release mixes 3:1)."""
from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

KINDS = {"ingest", "eval", "grpo", "generate", "judge", "filter", "release", "sft", "report", "reward", "rewrite"}


def _r1f(*args: str, catalog: Path) -> str:
    proc = subprocess.run([sys.executable, "-m", "r1f", *args, "--catalog", str(catalog)], capture_output=True,
                          text=True, check=True, env={**os.environ, "COLUMNS": "200"})
    return proc.stdout


@pytest.mark.timeout(3600)
def test_mini_r1_quick_runs_every_stage_and_reruns_adding_nothing(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("R1F_CATALOG", None)
    # One torch thread, the demo's default: on a machine of two cores or more the student base pretrains in a
    # second process and the pipeline's side lane runs in another, as `make demo` runs them.
    cmd = [sys.executable, "-m", "r1f", "demo", "--quick", "--out", str(out)]
    first = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=3000)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-6000:]
    pipeline = out / "pipeline.yaml"
    assert f"$ r1f run {pipeline} --catalog {out / 'catalog'}" in first.stdout
    assert "$ r1f show" in first.stdout and "Mini-R1 summary" in first.stdout
    report = (out / "report-mini-r1-mix.html").read_text()
    assert "<img" in report  # the release's HTML report, with its plots
    # ...and the curves of the trainings behind the mix's samples: reasoning RL, and the cold-start SFT it started from.
    assert re.findall(r"<h3>(\w+) t_", report) == ["sft", "grpo"] and "mean reward per step" in report, report[-3000:]

    summary = json.loads((out / "summary.json").read_text())
    stages = [r["stage"] for r in summary["rows"]]
    for want in ("pretrain (base)", "R1-Zero GRPO (seed 0)", "cold-start SFT of the base", "reasoning RL (GRPO)",
                 "rejection sampling + 3:1 mix", "distillation (SFT on the release)", "pretrain (student-base)",
                 "R1 stage 3: SFT of the base on the mix", "reward model: helpfulness", "reward model: harmlessness",
                 "R1 stage 4: RL over all scenarios"):
        assert want in stages, f"stage {want!r} missing from the summary: {stages}"
    assert all(r["pass_at_1"] is None or 0 <= r["pass_at_1"] <= 100 for r in summary["rows"])
    # The non-reasoning exact match: the cold-start model's, stage 3's and stage 4's, and no other row's.
    matched = {r["model"]: r["exact_match"] for r in summary["rows"] if r["exact_match"] is not None}
    assert set(matched) == {"cold-start-sft", "mix-sft", "all-scenarios-rl"}, matched
    assert all(0 <= m <= 100 for m in matched.values())

    catalog = out / "catalog"
    # Every stage of the pipeline file ran through `r1f run`, and the catalog records it done.
    import yaml

    names = [s["name"] for s in yaml.safe_load(pipeline.read_text())["stages"]]
    recorded = json.loads(_r1f("status", "--json", catalog=catalog))
    assert [r["stage"] for r in recorded] == names
    assert all(r["status"] == "done" and r["pipeline"] == "mini-r1" for r in recorded), recorded
    side = [s["name"] for s in yaml.safe_load(pipeline.read_text())["stages"] if s.get("lane") == "side"]
    assert side == ["eval-student-base", "grpo-student-grpo", "eval-student-grpo"], side
    if (os.cpu_count() or 1) >= 2:  # apart: the lane's stages logged to its own file, their starts to the console
        log = (catalog / "logs" / "mini-r1-lane-side.log").read_text()
        assert all(f"--- stage {name}" in log for name in side) and "[lane side]" in first.stdout
    assert {r["kind"] for r in recorded} == KINDS
    releases = {r["name"]: r for r in json.loads(_r1f("sql", "SELECT name, manifest FROM releases", "--json",
                                                      catalog=catalog))}
    assert {"mini-cold-start", "mini-r1-mix"} <= set(releases)
    # The cold start: the hand-written set whole, beside samples the R1-Zero model made; each rewrite names its
    # parent, an R1-Zero output with the same reasoning.
    cold = summary["cold_start"]
    assert cold["hand_written"] == 48 and cold["few_shot"] + cold["rewritten"] > 0, cold
    assert cold["total"] == cold["few_shot"] + cold["rewritten"] + cold["hand_written"], cold
    lineage = json.loads(_r1f("sql", "SELECT count(*) AS n, count(*) FILTER (WHERE p.reasoning = g.reasoning AND "
                              "r.template = 'r1_zero_dialogue_mini') AS same FROM release_members m JOIN generation_meta gm "
                              "USING (generation_id) JOIN generations g USING (generation_id) JOIN generations p "
                              "ON p.generation_id = gm.parent_id JOIN runs r ON r.run_id = p.run_id "
                              "WHERE m.release_name = 'mini-cold-start'", "--json", catalog=catalog))[0]
    assert lineage["n"] == cold["rewritten"] == lineage["same"], lineage
    mix = json.loads(releases["mini-r1-mix"]["manifest"])
    kinds = mix["by_kind"]
    assert kinds.get("reasoning", 0) > 0 and kinds.get("non_reasoning", 0) > 0
    total = kinds["reasoning"] + kinds["non_reasoning"]
    assert kinds["reasoning"] == round(0.75 * total), f"not the paper's 3:1 mix: {kinds}"
    trainings = json.loads(_r1f("sql", "SELECT kind, status, release_name FROM trainings", "--json", catalog=catalog))
    assert all(t["status"] == "finished" for t in trainings)
    assert {"sft", "grpo"} <= {t["kind"] for t in trainings}
    assert any(t["release_name"] == "mini-r1-mix" for t in trainings), "no model was trained on the release"
    # R1's stages 3 and 4 in order: the base SFT'd on the mix, two reward models, RL from stage 3 that scores its
    # non-reasoning prompts with those reward models.
    models = out / "models"
    lineage = {Path(t["output_dir"]).name: t for t in json.loads(_r1f(
        "sql", "SELECT kind, base_model, output_dir, release_name, prompts_where FROM trainings", "--json",
        catalog=catalog))}
    assert lineage["mix-sft"]["kind"] == "sft" and lineage["mix-sft"]["release_name"] == "mini-r1-mix"
    assert Path(lineage["mix-sft"]["base_model"]).name == "base"
    for aspect in ("helpfulness", "harmlessness"):
        rm = lineage[f"rm-{aspect}"]
        assert rm["kind"] == "reward" and f"preferences_{aspect}.jsonl" in rm["prompts_where"], rm
        assert (models / f"rm-{aspect}" / "config.json").exists()
    assert lineage["all-scenarios-rl"]["kind"] == "grpo"
    assert Path(lineage["all-scenarios-rl"]["base_model"]).resolve() == (models / "mix-sft").resolve()
    stage4 = yaml.safe_load((out / "recipes" / "grpo-all-scenarios-rl.yaml").read_text())
    assert {r["judge"]: r["where"] for r in stage4["rewards"]} == {
        "math_accuracy": "kind = 'reasoning'", "format": "kind = 'reasoning'",
        "language_consistency": "kind = 'reasoning'", "helpfulness": "kind = 'non_reasoning'",
        "harmlessness": "kind = 'non_reasoning'"}
    chat = json.loads(_r1f("sql", "SELECT count(*) AS n FROM prompts WHERE source = 'bench/mini-chat'", "--json",
                           catalog=catalog))
    assert chat[0]["n"] == len((out / "world" / "non_reasoning.jsonl").read_text().splitlines())
    # Each RL training keeps its curve (a point per logged step), drawn in OUT/rl_curves.png as the paper's Figures 2, 3.
    rl = json.loads(_r1f("sql", "SELECT output_dir, metrics FROM trainings WHERE kind = 'grpo'", "--json",
                         catalog=catalog))
    assert len(rl) >= 4, rl  # R1-Zero, reasoning RL, the student by GRPO alone, RL over all scenarios
    for t in rl:
        curve = json.loads(t["metrics"])["curve"]
        assert curve and all({"step", "reward", "completions/mean_length"} <= set(p) for p in curve), t
    assert summary["figures"] == ["pass_at_1.png", "rl_curves.png"] and (out / "rl_curves.png").stat().st_size > 0
    assert str(out / "rl_curves.png") in first.stdout
    evals = json.loads(_r1f("sql", "SELECT count(*) AS n FROM runs WHERE kind = 'eval'", "--json", catalog=catalog))
    assert evals[0]["n"] >= 6

    # Run again in the same folder: the pretrained bases are reused, the pipeline skips every stage (the plan says
    # why), the catalog gains nothing, not even a pipeline run, and the summary is the same.
    counts = "SELECT (SELECT count(*) FROM generation_meta), (SELECT count(*) FROM verdicts), " \
             "(SELECT count(*) FROM filter_decisions), (SELECT count(*) FROM trainings), " \
             "(SELECT count(*) FROM runs), (SELECT count(*) FROM pipeline_runs)"
    before = _r1f("sql", counts, "--csv", catalog=catalog)
    again = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, timeout=3000)
    assert again.returncode == 0, again.stdout[-6000:] + again.stderr[-6000:]
    assert again.stdout.count("done, unchanged") == len(names), again.stdout[-6000:]
    assert "nothing to do, every stage is done and unchanged" in again.stdout
    assert _r1f("sql", counts, "--csv", catalog=catalog) == before
    assert json.loads((out / "summary.json").read_text())["rows"] == summary["rows"]

    # Another seed in the same folder would reuse this seed's models and releases: refused, naming the fix.
    other = subprocess.run([*cmd, "--seed", "1"], check=False, capture_output=True, text=True, env=env, timeout=600)
    assert other.returncode == 2, other.stdout[-3000:] + other.stderr[-3000:]
    assert "fresh --out" in other.stdout + other.stderr
    assert _r1f("sql", counts, "--csv", catalog=catalog) == before


def test_every_reused_artefact_is_keyed_by_what_makes_it(tmp_path: Path) -> None:
    from r1f.mini.pipeline import Mini, MiniConfig, two_se

    keys = {MiniConfig.full(0).key(), MiniConfig.full(1).key(), MiniConfig.full(0, threads=2).key(),
            MiniConfig.quick(0).key()}
    assert len(keys) == 4, "seed, thread count and size must each change the key"
    assert MiniConfig.full(0).key() == MiniConfig.full(0).key()
    Mini.claim(tmp_path, MiniConfig.quick(0))
    Mini.claim(tmp_path, MiniConfig.quick(0))  # the same run again: fine
    from catalogs.errors import UserError

    with pytest.raises(UserError, match="fresh --out"):
        Mini.claim(tmp_path, MiniConfig.quick(1))
    # 200 problems x k=2 at 20% and 30%: sqrt(.16/400 + .21/400) = 3.04 points, twice that 6.1
    assert abs(two_se(20.0, 30.0, 400) - 6.08) < 0.01


def test_the_base_reads_the_worlds_facts_in_pretraining_and_never_a_held_out_problem(tmp_path: Path) -> None:
    from r1f.mini.world import NON_REASONING, WorldSpec, fact_documents, summary, write_world

    spec = WorldSpec(seed=3, train=100, heldout=50, pretrain_docs=4000, fact_share=0.25)
    files = write_world(tmp_path / "w", spec)
    docs = [json.loads(line)["text"] for line in files.pretrain.read_text().splitlines()]
    assert len(docs) == spec.pretrain_docs and max(map(len, docs)) <= 96  # the pretraining's window
    facts = [d for d in docs if "\\boxed" not in d and "=" not in d]  # no arithmetic in them
    assert len(facts) == 1000
    # Every answer of the non-reasoning pool is in the raw text, in the words the exact-match eval wants.
    text = "\n".join(facts)
    assert all(summary(a) in text for _, a in NON_REASONING)
    assert "The capital of France is Paris." in text and "User: hello\nAssistant: Hello! How can I help?" in text
    # ... and as the chat dialogue the chat eval asks in (the model's template is `User: ...\nAssistant: ...`),
    # about half the time for a capital or a translation (here every one is asked at least 25 times, 13 as dialogue).
    dialogue = "\n".join(fact_documents(4000, random.Random(0)))
    assert all(f"User: {q}\nAssistant: {summary(a)}" in dialogue for q, a in NON_REASONING)
    held = {json.loads(line)["problem"] for line in files.heldout.read_text().splitlines()}
    asked = {line.partition(": ")[2] for d in docs for line in d.splitlines()
             if line.startswith(("Q: ", "User: ", "Problem: "))}
    assert held and not held & asked
    # Same seed, same bytes.
    assert write_world(tmp_path / "again", spec).pretrain.read_bytes() == files.pretrain.read_bytes()
    with pytest.raises(ValueError, match="fact_share"):
        write_world(tmp_path / "bad", WorldSpec(fact_share=1.0))


def test_a_base_pretrained_in_a_second_process_is_byte_for_byte_the_one_trained_here(tmp_path: Path) -> None:
    """The demo pretrains the student base in a spawned process beside the base: with the same torch settings and
    seeds it must be the model `pretrain` makes in this process, to the byte; a base already made is reused without
    a process; a failure there is raised here, naming its log."""
    import hashlib

    import torch

    from pipelines.recipe import TorchSettings
    from pipelines.run import set_torch
    from r1f.mini.model import STUDENT, pretrain, pretrain_apart
    from r1f.mini.world import WorldSpec, write_world

    files = write_world(tmp_path / "world", WorldSpec(seed=0, train=50, heldout=10, pretrain_docs=300, curated=8))
    settings = TorchSettings(threads=1, deterministic=True)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    set_torch(settings)  # as `r1f demo` runs; this process's own settings come back below
    try:
        here = pretrain(tmp_path / "here" / "student-base", files.pretrain, STUDENT, steps=4, seed=0)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
    out = tmp_path / "apart" / "student-base"
    apart = pretrain_apart(out, files.pretrain, STUDENT, settings, steps=4, seed=0)
    try:
        got = apart.result()
    finally:
        apart.stop()

    def sha(folder: Path) -> str:
        return hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()

    assert sha(out) == sha(tmp_path / "here" / "student-base")
    assert (got["first_loss"], got["final_loss"], got["settings"]) == (
        here["first_loss"], here["final_loss"], here["settings"])
    assert "'loss'" in (tmp_path / "apart" / "student-base.log").read_text()  # its trainer's log, apart
    again = pretrain_apart(out, files.pretrain, STUDENT, settings, steps=4, seed=0)
    assert again.process is None and again.result() == got
    bad = pretrain_apart(tmp_path / "bad" / "student-base", tmp_path / "missing.jsonl", STUDENT, settings, steps=4,
                         seed=0)
    with pytest.raises(RuntimeError, match=r"in a second process failed \(its log: .*student-base\.log\)"):
        bad.result()
