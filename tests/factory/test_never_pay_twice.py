"""Never pay twice for a generation, with the real vLLM server (behind the fault proxy, which counts what reaches
it), real `r1f generate` processes and a real catalog on disk:

- a request that gives up mid-round keeps every sample that finished, and the rerun asks only for the rest;
- two processes on one run sample different prompts: generated in all == stored == requests served;
- a rerun of a finished recipe never loads the model.

No test here depends on how fast a process runs: where one needs the run at a given point (mid-round, both
processes busy at once), the proxy holds requests, or never answers them, until that state is reached, and
the test waits for the state, not for a time.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from catalogs import Catalog, schema
from catalogs.ingest import IngestOptions, ingest
from catalogs.query import sql
from factory.generate import generate_from_recipe
from factory.sampling import GenerationStopped
from tests.factory.fault_proxy import FaultProxy
from tests.factory.test_leases import downgrade_to_previous_schema
from tests.factory.test_sampling import JUDGES, PROBLEMS, make_catalog
from tests.helpers import SINGLE_PROCESS_ENGINE

REPO = Path(__file__).resolve().parents[2]


def openai_recipe(path: Path, base_url: str, extra: str = "", backend: str = "") -> Path:
    path.write_text(
        f"backend: {{name: openai, model: tiny, base_url: '{base_url}', api_key_env: R1F_TEST_NO_KEY{backend}}}\n"
        "template: {name: r1_zero}\n"
        "sampling: {temperature: 1.0, max_tokens: 8}\n" + extra)
    return path


def texts(cat: Catalog) -> dict[str, str]:
    g = cat.generations()
    return dict(zip(g["generation_id"].to_list(), g["text"].to_list()))


def test_request_that_gives_up_keeps_what_finished_and_rerun_asks_only_the_rest(tmp_path: Path,
                                                                                  vllm_server: str) -> None:
    cat = make_catalog(tmp_path, PROBLEMS[:4])
    with FaultProxy(vllm_server) as proxy:
        recipe = openai_recipe(
            tmp_path / "flaky.yaml", proxy.base_url,
            "samples_per_prompt: 2\nbudget: {max_samples: 4, round_size: 2, retry_samples: 2}\n"
            "judges: [simulated]\n",
            # One request at a time, so the round's 8 requests meet the faults in order.
            ", max_concurrency: 1, max_retries: 2, timeout_s: 30")
        # Round 1: the first three requests are served; from then on the endpoint fails every time, so the
        # fourth request gives up after its retries while five of the round's samples are still owed.
        proxy.schedule(["ok"] * 3, default="500")
        with pytest.raises(GenerationStopped) as e:
            generate_from_recipe(recipe, cat, judges=JUDGES, progress=False)
        served_first = proxy.seen.count("ok")
        msg = " ".join(str(e.value).split())
        assert served_first == 3
        # The message says exactly what was kept and what the rerun will ask for.
        assert "Committed from this call: 3 of the 8 samples asked for" in msg
        assert "Not generated: 5 sample(s)" in msg and "a rerun asks for exactly those, and none of the 3 again" in msg
        assert "HTTP 500" in msg or "500" in msg
        assert "rerun `r1f generate" in msg
        kept = texts(cat)
        assert len(kept) == 3  # the finished samples are in the catalog, with their verdicts
        assert len(cat.verdicts(list(kept))) == 3
        assert e.value.summary["samples_generated"] == 3

        proxy.schedule([])  # healthy again
        done = generate_from_recipe(recipe, cat, judges=JUDGES, progress=False)
        served_second = proxy.seen.count("ok")
    assert done["status"] == "complete"
    final = texts(cat)
    assert {g: final[g] for g in kept} == kept  # kept as they were
    # Every request that reached the server is exactly one stored sample: none was paid for twice.
    assert served_first + served_second == len(final)
    assert done["samples_generated"] == served_second == len(final) - 3


RUNNER = """
import json, os, runpy, sys
if os.environ.get("R1F_TEST_HOLD_BEFORE_VLLM"):
    class _Hold:  # the first import of vllm waits for a line on stdin: the run stays right there until then
        def find_spec(self, name, path=None, target=None):
            if name == "vllm":
                sys.meta_path.remove(self)
                print("holding before importing vllm", file=sys.stderr, flush=True)
                sys.stdin.readline()
            return None
    sys.meta_path.insert(0, _Hold())
sys.argv = ["r1f", *sys.argv[1:]]
try:
    runpy.run_module("r1f", run_name="__main__")
finally:
    loaded = sorted(m for m in sys.modules if m == "vllm" or m.startswith("vllm."))
    print("VLLM_MODULES=" + json.dumps(loaded[:3]), file=sys.stderr, flush=True)
"""


def r1f_process(*args: str, hold_before_vllm: bool = False, **popen: Any) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "250", "R1F_LOG_LEVEL": "INFO",
           **SINGLE_PROCESS_ENGINE}
    if hold_before_vllm:
        env["R1F_TEST_HOLD_BEFORE_VLLM"] = "1"
        popen["stdin"] = subprocess.PIPE
    return subprocess.Popen([sys.executable, "-c", RUNNER, *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)


def wait_until(ready: Callable[[], bool], what: str, *procs: subprocess.Popen, give_up_s: float = 600
               ) -> None:
    """Wait for a state, not for a time: `give_up_s` only keeps a hang from blocking the run."""
    deadline = time.monotonic() + give_up_s
    while not ready():
        for proc in procs:
            if proc.poll() is not None:
                _, err = proc.communicate()
                raise AssertionError(f"waiting for {what}: a process exited first, with {proc.returncode}:\n"
                                     + err[-3000:])
        assert time.monotonic() < deadline, f"waiting for {what}: not there after {give_up_s:.0f} s"
        time.sleep(0.05)


def finish(proc: subprocess.Popen, timeout: float = 400) -> tuple[int, dict[str, Any], str]:
    out, err = proc.communicate(timeout=timeout)
    lines = out.splitlines()  # the engine prints to stdout too; --json's summary is the last `{` ... `}` block
    starts = [i for i, line in enumerate(lines) if line == "{"]
    summary = json.loads("\n".join(lines[starts[-1]:])) if starts else {}
    return proc.returncode, summary, err


def test_two_processes_on_one_run_share_the_work(tmp_path: Path, vllm_server: str) -> None:
    problems = [f"question {i}: what is {i} + {i}?" for i in range(24)]
    src = tmp_path / "prompts.jsonl"
    src.write_text("\n".join(json.dumps({"problem": p, "answer": str(2 * i)}) for i, p in enumerate(problems)) + "\n")
    cat = Catalog(tmp_path / "catalog")
    ingest(cat, src, IngestOptions(source="two", kind="reasoning", domain="math"))
    # The catalog as the schema before leases wrote it: both processes open it, and one of them migrates it.
    downgrade_to_previous_schema(cat.db_path)

    with FaultProxy(vllm_server) as proxy:
        # Every request is held until both processes have requests in flight: the first has at most 2 (its
        # concurrency), so a third is the second's. Then both surely work, however far apart they start.
        proxy.schedule([], default="hold")
        recipe = openai_recipe(tmp_path / "shared.yaml", proxy.base_url,
                               "samples_per_prompt: 2\nbudget: {max_samples: 2, round_size: 2}\n"
                               "output: {chunk_prompts: 2}\n", ", max_concurrency: 2, max_retries: 0")
        args = ("generate", str(recipe), "--catalog", str(cat.root), "--json")
        procs = [r1f_process(*args)]
        try:
            wait_until(lambda: proxy.held >= 1, "the first process's first request", *procs)
            procs.append(r1f_process(*args))  # started while the first is mid-run, as in the report
            wait_until(lambda: proxy.held >= 3, "the second process's first request", *procs)
        except BaseException:
            for proc in procs:
                proc.kill()
            raise
        finally:
            proxy.release()
        first, second = procs
        rc1, s1, err1 = finish(first)
        rc2, s2, err2 = finish(second)
        served = proxy.seen.count("hold")
    assert rc1 == 0, err1[-3000:]
    assert rc2 == 0, err2[-3000:]
    assert {s1["status"], s2["status"]} <= {"complete", "left_to_others"}, (s1, s2)
    stored = cat.generations()
    assert len(stored) == 48 and stored["generation_id"].n_unique() == 48
    # Generated in all == stored == requests the server answered: nothing was generated twice.
    assert s1["samples_generated"] + s2["samples_generated"] == 48 == served
    # The second process worked on other prompts rather than stopping or duplicating.
    assert s1["samples_generated"] > 0 and s2["samples_generated"] > 0, (s1, s2)
    stats = sql(cat, "select samples, accepted, status from prompt_stats")[1]
    assert sorted(stats) == [(2, 2, "solved")] * 24
    # No lease is left behind, and the catalog is at the current schema.
    assert sql(cat, "select count(*) from generation_meta")[1][0][0] == 48
    con = duckdb.connect(str(cat.db_path), read_only=True)
    assert con.execute("SELECT count(*) FROM leases").fetchone()[0] == 0
    assert int(con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]) == \
        schema.SCHEMA_VERSION
    con.close()


def test_rerun_of_a_finished_recipe_never_loads_the_model(tmp_path: Path, tiny_model_dir: Path,
                                                         vllm_llm: Any) -> None:
    from backends.vllm_backend import VLLMBackend

    cat = make_catalog(tmp_path, PROBLEMS[:3])
    recipe = tmp_path / "done.yaml"
    recipe.write_text(f"backend: {{name: vllm, model: {tiny_model_dir}, max_model_len: 2048, "
                      "gpu_memory_utilization: 0.3, enforce_eager: true}\n"
                      "sampling: {temperature: 1.0, max_tokens: 8}\nsamples_per_prompt: 2\n"
                      "budget: {max_samples: 2, round_size: 2}\n")
    first = generate_from_recipe(recipe, cat, backend=VLLMBackend(llm=vllm_llm), progress=False)
    assert first["status"] == "complete" and first["samples_generated"] == 6

    # The same recipe again, as a user runs it: the backend would be the in-process engine.
    rc, again, err = finish(r1f_process("generate", str(recipe), "--catalog", str(cat.root), "--json"))
    assert rc == 0, err[-3000:]
    assert again["status"] == "complete" and again["samples_generated"] == 0 and again["backend_calls"] == 0
    assert "VLLM_MODULES=[]" in err  # vLLM was never even imported
    assert "opening the backend" not in err
    assert len(cat.generations()) == 6


def test_kill_dash_nine_mid_round_keeps_what_arrived(tmp_path: Path, vllm_server: str) -> None:
    """A real `r1f generate` against the served model, committing each sample as it arrives, killed with -9 in the
    middle of its one round: what arrived is stored, the rerun (over the dead process's leases and staging)
    asks only for the rest, and its requests are exactly the samples it adds."""
    problems = [f"sum {i}: what is {i} + 1?" for i in range(12)]
    src = tmp_path / "prompts.jsonl"
    src.write_text("\n".join(json.dumps({"problem": p, "answer": str(i + 1)}) for i, p in enumerate(problems)) + "\n")
    cat = Catalog(tmp_path / "catalog")
    ingest(cat, src, IngestOptions(source="kill", kind="reasoning", domain="math"))
    with FaultProxy(vllm_server) as proxy:
        # Eight requests are answered, then none: the kill lands anywhere from the fifth commit on, but always
        # mid-round, however far the process has got by then.
        proxy.schedule(["ok"] * 8, default="hang")
        recipe = openai_recipe(tmp_path / "kill.yaml", proxy.base_url,
                               "samples_per_prompt: 2\nbudget: {max_samples: 2, round_size: 2}\n"
                               "output: {commit_every: 1}\n", ", max_concurrency: 2, max_retries: 0")
        proc = r1f_process("generate", str(recipe), "--catalog", str(cat.root), start_new_session=True)
        commits = 0
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                if "factory: committed 1 generations" in line:
                    commits += 1
                    if commits == 5:
                        os.killpg(proc.pid, 9)
                        break
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 9)
            proc.wait(timeout=60)
        assert commits == 5 and proc.returncode == -9
        before = texts(cat)
        assert 5 <= len(before) <= 8  # everything that arrived was committed; the round was cut short
        served_before = proxy.seen.count("ok")  # what reached the server (the hanging ones never did)

        proxy.schedule([], default="ok")
        done = generate_from_recipe(recipe, cat, progress=False)
        served_rerun = proxy.seen.count("ok")
    assert served_before >= len(before)  # (requests in flight at the kill were served and lost: at most 2 + 1)
    assert served_before - len(before) <= 3
    assert done["status"] == "complete"
    after = texts(cat)
    assert len(after) == 24 and {g: after[g] for g in before} == before
    assert done["samples_generated"] == served_rerun == 24 - len(before)  # nothing stored was asked for again
    assert not any((cat.root / "staging").iterdir())  # the killed process's staging folder is gone


def test_second_process_leaves_a_leased_round_without_loading_a_model(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The in-process engine: the first `r1f generate` leases its whole round, then loads its engine; a second one
    on the same recipe and catalog finds everything leased, says who holds it and stops, without loading a model."""
    cat = make_catalog(tmp_path, PROBLEMS)
    recipe = tmp_path / "engine.yaml"
    recipe.write_text(f"backend: {{name: vllm, model: {tiny_model_dir}, max_model_len: 2048, "
                      "gpu_memory_utilization: 0.3, enforce_eager: true}\n"
                      "sampling: {temperature: 1.0, max_tokens: 8}\nsamples_per_prompt: 2\n"
                      "budget: {max_samples: 2, round_size: 2}\n")
    args = ("generate", str(recipe), "--catalog", str(cat.root), "--json")
    # The first process is held where it imports vLLM, after it leased the round and began opening its
    # backend, until the second has finished: the second surely finds the round leased, however slow.
    first = r1f_process(*args, hold_before_vllm=True)
    try:
        assert first.stderr is not None and first.stdin is not None
        seen: list[str] = []
        for line in first.stderr:  # the round is leased before the engine loads
            seen.append(line)
            if "holding before importing vllm" in line:
                break
        assert "holding before importing vllm" in seen[-1], "".join(seen[-30:])
        assert any("opening the backend" in line for line in seen), "".join(seen[-30:])
        rc2, second, err2 = finish(r1f_process(*args))
    finally:
        try:
            first.stdin.write("go\n")
            first.stdin.flush()
        except OSError:
            pass  # it is gone already; finish() says how
        rc1, s1, err1 = finish(first)
    assert rc2 == 0, err2[-3000:]
    assert second["status"] == "left_to_others" and second["samples_generated"] == 0
    assert second["left_to_others"] == len(PROBLEMS)
    msg = " ".join(err2.split())
    assert f"being sampled by another process right now (pid {first.pid} on " in msg and "left to it" in msg
    assert "VLLM_MODULES=[]" in err2 and "opening the backend" not in err2
    assert rc1 == 0 and s1["status"] == "complete", err1[-3000:]
    assert s1["samples_generated"] == 12 == len(cat.generations())


def test_ctrl_c_mid_round_commits_what_arrived(tmp_path: Path, vllm_server: str) -> None:
    """Ctrl-C in the middle of a round whose samples wait in memory for their batch (commit_every is far away):
    every sample that arrived is committed on the way out, and the rerun asks only for the rest."""
    import signal

    problems = [f"double {i}: what is 2 * {i}?" for i in range(12)]
    src = tmp_path / "prompts.jsonl"
    src.write_text("\n".join(json.dumps({"problem": p, "answer": str(2 * i)}) for i, p in enumerate(problems)) + "\n")
    cat = Catalog(tmp_path / "catalog")
    ingest(cat, src, IngestOptions(source="ctrl-c", kind="reasoning", domain="math"))
    with FaultProxy(vllm_server) as proxy:
        # Eight requests are answered, then none: once both of the process's requests hang, eight samples have
        # arrived and wait in memory, and the round cannot finish before the Ctrl-C, however slow the test is.
        proxy.schedule(["ok"] * 8, default="hang")
        recipe = openai_recipe(tmp_path / "int.yaml", proxy.base_url,
                               "samples_per_prompt: 2\nbudget: {max_samples: 2, round_size: 2}\n",
                               ", max_concurrency: 2, max_retries: 0")
        proc = r1f_process("generate", str(recipe), "--catalog", str(cat.root), "--json")
        wait_until(lambda: proxy.hanging == 2, "both requests of the process hanging", proc)
        proc.send_signal(signal.SIGINT)
        rc, summary, err = finish(proc)
        stored = texts(cat)
        assert rc == 0 and summary["status"] == "interrupted", err[-3000:]
        assert 0 < len(stored) < 24 and summary["samples_generated"] == len(stored)
        assert "interrupted: everything finished so far is committed" in " ".join(err.split())

        proxy.schedule([], default="ok")
        done = generate_from_recipe(recipe, cat, progress=False)
        served_rerun = proxy.seen.count("ok")
    after = texts(cat)
    assert done["status"] == "complete" and len(after) == 24 and {g: after[g] for g in stored} == stored
    assert done["samples_generated"] == served_rerun == 24 - len(stored)
