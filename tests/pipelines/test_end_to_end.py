"""One pipeline end to end: ingest from a fake Hub → generate (vLLM CPU, the tiny model) → judge → filter →
release → export → train sft → eval → report. The first run does everything; a rerun does nothing and starts no
engine; a run killed with -9 during generate and run again ends with the uninterrupted run's data, row by row; a
changed filter threshold reruns the filter and what follows, nothing before. Kept small: four prompts, one sample
each, 8 tokens, two SFT steps, one eval problem; the in-process runs share the session's engine."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from catalogs import Catalog
from pipelines.run import run_pipeline
from tests.fakehub import FakeHub, hub_env
from tests.helpers import HOLD_AT_COMMIT, SINGLE_PROCESS_ENGINE, r1f_batch

REPO = Path(__file__).resolve().parents[2]
STAGES = ["ingest", "generate", "judge", "filter", "release", "export", "sft", "eval", "report"]

# The killed run: the pipeline in its own process (own engine), held at its second commit of generations until
# the test's kill -9 lands, so the kill always falls inside generate.
SCRIPT = HOLD_AT_COMMIT + '''
import logging, sys
from pathlib import Path


if __name__ == "__main__":  # vLLM spawns processes
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s: %(message)s")
    logging.getLogger().addHandler(HoldAtCommit(2))
    from catalogs import Catalog
    from pipelines.run import run_pipeline
    run_pipeline(Catalog(sys.argv[2]), Path(sys.argv[1]))
'''


def _files(folder: Path, tiny: Path, threshold: str) -> Path:
    (folder / "generate.yaml").write_text(
        f"backend: {{name: vllm, model: {tiny}, max_model_len: 2048, gpu_memory_utilization: 0.3, "
        "enforce_eager: true}\nsampling: {temperature: 1.0, max_tokens: 8}\nsamples_per_prompt: 1\n"
        "budget: {max_samples: 1, round_size: 1}\njudges: []\noutput: {chunk_prompts: 1}\n")
    (folder / "judge.yaml").write_text("judges:\n  - name: math_accuracy\n")
    # The filters keep to the pipeline's own samples (not the eval's).
    (folder / "filters.yaml").write_text(f"where: \"source = 'add'\"\nfilters:\n  - name: hygiene\n  - name: language_mixing\n"
                                         f"    params: {{max_foreign_share: {threshold}}}\n")
    (folder / "sft.yaml").write_text(
        f"model: {tiny}\nrelease: rel\noutput_dir: {folder / 'sft-out'}\nchat_template: chatml\n"
        "trl: {max_steps: 2, per_device_train_batch_size: 4, learning_rate: 0.001, save_strategy: 'no', "
        "max_length: 128, seed: 0}\n")
    bench = folder.parent / "bench.jsonl"  # one file for both pipelines: its path is the eval prompts' source
    bench.write_text(json.dumps({"problem": "What is 2 + 3?", "answer": "5"}) + "\n")
    (folder / "eval.yaml").write_text(f"name: tiny-eval\nbackend: {{name: vllm, model: {tiny}}}\nbenchmarks:\n"
                                      f"  - {{name: add, file: {bench}}}\nk: 1\nsampling: {{max_tokens: 8}}\n")
    (folder / "pipeline.yaml").write_text(
        "name: e2e\nstages:\n"
        "  - {name: ingest, kind: ingest, args: {source: 'hf://datasets/org/add', split: train}}\n"
        "  - {name: generate, kind: generate, recipe: generate.yaml}\n"
        "  - {name: judge, kind: judge, recipe: judge.yaml}\n"
        "  - {name: filter, kind: filter, recipe: filters.yaml}\n"
        "  - {name: release, kind: release, release: rel, args: {where: \"source = 'add'\"}}\n"
        "  - {name: export, kind: export, release: rel, args: {out: out/rel.jsonl, format: jsonl}}\n"
        "  - {name: sft, kind: sft, recipe: sft.yaml}\n"
        "  - {name: eval, kind: eval, recipe: eval.yaml}\n"
        "  - {name: report, kind: report, release: rel, args: {out: out/report.html}}\n")
    return folder / "pipeline.yaml"


# The data tables, row by row: what a stage made, leaving out timestamps, the ingest's own event id, and run
# metrics that hold wall times. Pipeline bookkeeping (pipeline_runs, pipeline_stages) is not data.
DATA_QUERIES = {
    "prompts": "SELECT prompt_id, source, source_uri, source_row, messages, problem, answer, kind, domain, language "
               "FROM prompts",
    "runs": "SELECT run_id, kind, model, backend, template, sampling, recipe FROM runs",
    "generations": "SELECT generation_id, prompt_id, run_id, sample_index, seed, text, finish_reason FROM generations",
    "verdicts": "SELECT generation_id, judge, judge_version, score, passed, reason FROM verdicts",
    "filter_decisions": "SELECT generation_id, filter, filter_version, params_hash, passed, reason, value "
                        "FROM filter_decisions",
    "prompt_stats": "SELECT prompt_id, run_id, samples, accepted, status FROM prompt_stats",
    "releases": "SELECT name, release_id, manifest_sha256, members FROM releases",
    "release_members": "SELECT * FROM release_members",
    "trainings": "SELECT kind, base_model, release_name, manifest_sha256, status FROM trainings",
    "eval_answers": "SELECT * FROM eval_answers",
}


def _data(cat: Path) -> dict[str, list[tuple]]:
    from catalogs.query import sql

    out = {}
    for name, query in DATA_QUERIES.items():
        _, rows = sql(Catalog(cat), f"SELECT * FROM ({query}) ORDER BY ALL")
        out[name] = rows
    return out


def _hub(hub: FakeHub) -> None:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist([{"problem": f"What is {a} + {b}?", "answer": str(a + b)}
                                         for a, b in [(1, 2), (3, 4), (5, 6), (7, 8)]]), buf)
    hub.add_dataset("org/add", {"data/train-00000.parquet": buf.getvalue()})


def test_one_pipeline_end_to_end(tmp_path: Path, hub: FakeHub, tiny_model_dir: Path,
                                 request: pytest.FixtureRequest) -> None:
    from backends.vllm_backend import VLLMBackend

    _hub(hub)
    first, killed = tmp_path / "first", tmp_path / "killed"
    for folder in (first, killed):
        folder.mkdir()
        _files(folder, tiny_model_dir, "0.5")
    pipeline = first / "pipeline.yaml"

    # The run that is killed starts first, in its own process (own engine, own Hub cache): it ingests and loads
    # while the first run is made here, and holds at its second commit of generations until the kill below.
    env = hub_env(hub, tmp_path, None)  # TMPDIR stays short: vLLM puts its sockets there
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    child = subprocess.Popen([sys.executable, str(script), str(killed / "pipeline.yaml"), str(killed / "cat")],
                             cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True,
                             env={**os.environ, **env, "HF_HOME": str(killed / "hf-home"), "PYTHONPATH": str(REPO),
                                  **SINGLE_PROCESS_ENGINE})
    try:
        # The first run's ingest from the fake Hub, in a process of its own: the Hub client reads its endpoint
        # when it is imported (vLLM imports it in this process).
        (ran,) = r1f_batch([["run", str(pipeline), "--until", "ingest", "--json", "--catalog", str(first / "cat")]],
                           {**env, "HF_HOME": str(first / "hf-home")})
        assert ran.returncode == 0, ran.stderr
        assert list(json.loads(ran.stdout)["outputs"]) == ["ingest"]
        backend = VLLMBackend(llm=request.getfixturevalue("vllm_llm"))  # the session's engine, asked for now
        # 1. The first run does everything after the ingest, on the shared engine.
        done = run_pipeline(Catalog(first / "cat"), pipeline, backend=backend)
        assert done["status"] == "done" and list(done["outputs"]) == STAGES[1:]
        assert done["outputs"]["generate"]["samples_generated"] == 4 and done["outputs"]["release"]["members"] == 4
        reference = _data(first / "cat")

        # 2. Run again, with no engine given: nothing to do, so no stage runs and no engine starts (a stage that
        # sampled would start its own).
        again = run_pipeline(Catalog(first / "cat"), pipeline)
        assert [s["action"] for s in again["steps"]] == ["skip"] * len(STAGES) and again["outputs"] == {}
        assert _data(first / "cat") == reference

        # 3. Killed with -9 inside generate, then run again: the uninterrupted run's data, row by row.
        commits, tail = 0, []
        assert child.stdout is not None
        for line in child.stdout:
            tail = (tail + [line])[-30:]
            if line.startswith("factory: committed"):
                commits += 1
                os.killpg(child.pid, signal.SIGKILL)  # the first commit is in the catalog; the second holds
                break
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    assert commits == 1, "the run ended before it was killed:\n" + "".join(tail)
    stages = Catalog(killed / "cat").pipeline_stages("e2e")
    assert stages["generate"]["status"] == "running" and "judge" not in stages
    resumed = run_pipeline(Catalog(killed / "cat"), killed / "pipeline.yaml", backend=backend)
    assert list(resumed["outputs"]) == STAGES[1:]  # the ingest was done: not done twice
    assert 0 < resumed["outputs"]["generate"]["samples_generated"] < 4
    got = _data(killed / "cat")
    # The source uri, the sft output folder and the release's files are the same in both; the two catalogs differ
    # in nothing a stage made.
    for table, rows in reference.items():
        assert got[table] == rows, (table, sorted(set(got[table]) ^ set(rows))[:6])

    # 4. A changed filter threshold, the pipeline file as it was: the filter and every stage after it run again,
    # nothing before. The release stage selects the same members under the same name, so the frozen release
    # stands as it was (a release is never replaced).
    (first / "filters.yaml").write_text((first / "filters.yaml").read_text().replace("0.5", "0.6"))
    changed = run_pipeline(Catalog(first / "cat"), pipeline, backend=backend)
    assert [(s["name"], s["action"]) for s in changed["steps"]][:4] == [
        ("ingest", "skip"), ("generate", "skip"), ("judge", "skip"), ("filter", "run")]
    assert changed["steps"][3]["why"] == "recipe changed" and list(changed["outputs"]) == STAGES[3:]
    assert changed["outputs"]["release"] == done["outputs"]["release"]
    after = _data(first / "cat")
    assert all(after[t] == reference[t] for t in ("prompts", "runs", "generations", "verdicts", "releases",
                                                  "release_members"))
    assert len(after["filter_decisions"]) == len(reference["filter_decisions"]) + 4  # the new params' decisions
