"""Adaptive rejection sampling with the real vLLM engine on the tiny model and a real catalog on disk.

The tiny model is random, so acceptance is simulated by judges: prompts marked "easy" always pass,
"impossible" never, "medium" pass iff the generation id's hash is 0 mod 3 (about one in three).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from backends.base import ChatRequest, Completion
from catalogs import Catalog
from catalogs.ids import generation_id, sample_seed
from catalogs.ingest import IngestOptions, ingest
from catalogs.query import sql
from factory.generate import generate_from_recipe
from factory.sampling import GenerationStopped, Policy

PROBLEMS = ["easy: what is 1+1?", "easy: name a colour", "impossible: prove P != NP",
            "medium: what is 7*8?", "medium: spell 'cat' backwards", "medium: capital of France?"]


def simulated_judge(sample: Any) -> dict[str, Any]:
    problem = sample.problem
    if problem.startswith("easy"):
        ok = True
    elif problem.startswith("impossible"):
        ok = False
    else:
        ok = int(hashlib.sha256(sample.generation_id.encode()).hexdigest(), 16) % 3 == 0
    return {"passed": ok, "score": float(ok), "reason": "simulated"}


simulated_judge.version = "1"  # type: ignore[attr-defined]
JUDGES = {"simulated": simulated_judge}


class CountingBackend:
    """The real backend, with a count of `generate` calls and optional fault injection on call N."""

    def __init__(self, inner: Any, fail_on_call: int | None = None, fault: Any = None) -> None:
        self.inner, self.name = inner, inner.name
        self.calls: list[list[ChatRequest]] = []
        self.fail_on_call, self.fault = fail_on_call, fault

    def generate(self, requests: list[ChatRequest]) -> list[list[Completion]]:
        self.calls.append(requests)
        if self.fail_on_call is not None and len(self.calls) >= self.fail_on_call:
            self.fault()
        return self.inner.generate(requests)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def backend(vllm_llm: Any) -> Any:
    from backends.vllm_backend import VLLMBackend

    return VLLMBackend(llm=vllm_llm)


def make_catalog(tmp_path: Path, problems: list[str] = PROBLEMS) -> Catalog:
    src = tmp_path / "prompts.jsonl"
    src.write_text("\n".join(json.dumps({"problem": p, "answer": "x", "domain": "math"}) for p in problems) + "\n")
    cat = Catalog(tmp_path / "catalog")
    ingest(cat, src, IngestOptions(source="test", kind="reasoning"))
    return cat


def make_recipe(tmp_path: Path, model_dir: Path, k: int = 2, max_samples: int = 6, round_size: int = 2,
                retry: int = 4, extra: str = "", name: str = "recipe.yaml") -> Path:
    p = tmp_path / name
    p.write_text(
        f"backend: {{name: vllm, model: {model_dir}, max_model_len: 2048}}\n"
        "sampling: {temperature: 1.0, top_p: 1.0, max_tokens: 8}\n"
        f"samples_per_prompt: {k}\n"
        f"budget: {{max_samples: {max_samples}, round_size: {round_size}, retry_samples: {retry}}}\n"
        "judges: [simulated]\n" + extra
    )
    return p


def stats(cat: Catalog) -> dict[str, dict[str, Any]]:
    cols, rows = sql(cat, "select p.problem, s.* from prompt_stats s join prompts p using (prompt_id)")
    return {r[0]: dict(zip(cols, r)) for r in rows}


def test_rejection_sampling_k_stop_retry_budget(tmp_path: Path, tiny_model_dir: Path, backend: Any) -> None:
    cat = make_catalog(tmp_path)
    counting = CountingBackend(backend)
    summary = generate_from_recipe(make_recipe(tmp_path, tiny_model_dir), cat, judges=JUDGES, backend=counting,
                                   progress=False)
    assert summary["status"] == "complete"
    gens = cat.generations(run_id=summary["run_id"])
    assert len(gens) == summary["samples_total"] == summary["samples_generated"] > 0
    assert gens["generation_id"].n_unique() == len(gens)
    policy = Policy(k=2, round_size=2, max_samples=6, retry_samples=4, max_round_size=6)

    st = stats(cat)
    assert set(st) == set(PROBLEMS)
    for problem, s in st.items():
        rows = gens.filter(gens["prompt_id"] == s["prompt_id"]).sort("sample_index")
        # Indices run 0..n-1, each sample's seed is derived from its id.
        assert rows["sample_index"].to_list() == list(range(s["samples"]))
        for g in rows.to_dicts():
            assert g["generation_id"] == generation_id(s["prompt_id"], summary["run_id"], g["sample_index"])
            assert g["seed"] == sample_seed(g["generation_id"])
            assert g["completion_tokens"] and g["completion_tokens"] <= 8
        assert s["samples"] <= 6 + 4  # budget plus the one retry
        if problem.startswith("easy"):  # k reached in the first round: never sampled again
            assert (s["samples"], s["accepted"], s["status"], s["rounds"]) == (2, 2, "solved", 1)
        elif problem.startswith("impossible"):  # first round, one retry of 4, then unsolved
            assert (s["samples"], s["accepted"], s["status"], s["rounds"]) == (6, 0, "unsolved", 2)
        else:
            assert s["status"] in ("solved", "open", "unsolved")
            assert s["status"] != "solved" or s["accepted"] >= 2
            assert s["status"] != "open" or s["samples"] >= 6
        # k-stop: no round was started after the prompt already had k accepted samples.
        vs = cat.verdicts(rows["generation_id"].to_list())
        passed = dict(zip(vs["generation_id"].to_list(), vs["passed"].to_list()))
        history = [passed[g] for g in rows["generation_id"].to_list()]
        assert policy.rounds(history) == s["rounds"]
        assert sum(history) == s["accepted"]
        # Each backend call asked this prompt for more only while it had fewer than k accepted.
        seen = 0
        for call in counting.calls:
            mine = [r for r in call if r.key == s["prompt_id"]]
            if mine:
                assert sum(history[:seen]) < 2
                seen += sum(r.n for r in mine)  # one request per sample
        assert seen == s["samples"]
        assert s["pass_rate"] == pytest.approx(s["accepted"] / s["samples"])
    # One verdict per generation for the one judge, with its version.
    vs = cat.verdicts(gens["generation_id"].to_list())
    assert len(vs) == len(gens) and set(vs["judge"]) == {"simulated"} and set(vs["judge_version"]) == {"1"}
    # All prompts of a round went to the backend in one call.
    assert len(counting.calls) == summary["rounds"] == summary["backend_calls"]
    assert len({r.key for r in counting.calls[0]}) == len(PROBLEMS)
    # The reasoning/answer split is stored with every generation.
    assert gens["answer"].null_count() == 0
    # Yield accounting: this session's tokens in and out are its generations', its engine seconds the backend's.
    _, usage = sql(cat, "SELECT generations, tokens_in, tokens_out, engine_s, gpu_s, cost FROM run_usage")
    assert [tuple(u[:3]) for u in usage] == [(len(gens), gens["prompt_tokens"].sum(), gens["completion_tokens"].sum())]
    assert usage[0][3] > 0 and usage[0][5] is None  # no price in the recipe: no cost

    # Run it again: nothing is missing, so nothing is generated.
    again = generate_from_recipe(make_recipe(tmp_path, tiny_model_dir), cat, judges=JUDGES, backend=counting,
                                 progress=False)
    assert again["samples_generated"] == 0 and again["run_id"] == summary["run_id"]
    assert len(sql(cat, "SELECT * FROM run_usage")[1]) == 1  # a session that did no work used nothing
    assert len(cat.generations(run_id=summary["run_id"])) == len(gens)

    # Raising k continues the same run: only the extra samples are made, old ones kept.
    more = generate_from_recipe(make_recipe(tmp_path, tiny_model_dir, k=3), cat, judges=JUDGES, backend=counting,
                                progress=False)
    assert more["run_id"] == summary["run_id"]
    st3 = stats(cat)
    assert st3["easy: what is 1+1?"]["samples"] == 3 and st3["easy: what is 1+1?"]["accepted"] == 3
    assert st3["impossible: prove P != NP"]["samples"] == 6
    after = cat.generations(run_id=summary["run_id"])
    assert set(gens["generation_id"]) <= set(after["generation_id"])
    _, usage = sql(cat, "SELECT sum(generations), sum(tokens_out), count(*) FROM run_usage")
    assert tuple(usage[0]) == (len(after), after["completion_tokens"].sum(), 2)
    assert after["generation_id"].n_unique() == len(after)


def test_no_judges_accepts_everything_and_chunks_commit(tmp_path: Path, tiny_model_dir: Path, backend: Any) -> None:
    cat = make_catalog(tmp_path)
    p = tmp_path / "r.yaml"
    p.write_text(f"backend: {{name: vllm, model: {tiny_model_dir}}}\nsampling: {{max_tokens: 4}}\n"
                 "samples_per_prompt: 2\noutput: {chunk_prompts: 4}\n")
    counting = CountingBackend(backend)
    s = generate_from_recipe(p, cat, backend=counting, progress=False)
    assert (s["solved"], s["samples_total"], s["accepted_total"], s["rounds"]) == (6, 12, 12, 1)
    assert [len({r.key for r in c}) for c in counting.calls] == [4, 2]  # prompts per call
    assert len(cat.verdicts()) == 0


def test_same_seed_same_text_regardless_of_batch(tmp_path: Path, backend: Any) -> None:
    # What resume relies on: a sample's text depends on its prompt and seed, not on what it was batched with.
    msgs = [{"role": "user", "content": "hello there"}]
    alone = backend.generate([ChatRequest(messages=msgs, n=2, seeds=[11, 12], max_tokens=12, temperature=1.0)])
    batched = backend.generate([
        ChatRequest(messages=[{"role": "user", "content": "another prompt"}], n=3, seeds=[1, 2, 3], max_tokens=12,
                    temperature=1.0),
        ChatRequest(messages=msgs, n=3, seeds=[12, 11, 13], max_tokens=12, temperature=1.0),
    ])
    assert [c.text for c in alone[0]] == [batched[1][1].text, batched[1][0].text]
    assert alone[0][0].text != alone[0][1].text


def test_dry_run_generates_nothing(tmp_path: Path, tiny_model_dir: Path, capsys: Any) -> None:
    cat = make_catalog(tmp_path)
    plan = generate_from_recipe(make_recipe(tmp_path, tiny_model_dir), cat, dry_run=True, judges=JUDGES)
    out = capsys.readouterr().out
    first_problem = plan["first_prompt"][-1]["content"].split("\n")[0]
    assert first_problem in PROBLEMS and first_problem in out
    assert "first rendered prompt" in out and "\\boxed{}" in out
    assert plan["status"] == "dry_run" and plan["prompts"] == 6 and plan["first_round_samples"] == 12
    assert plan["max_samples"] == 6 * 10 and plan["estimated_prompt_tokens_per_sample"] > 0
    assert plan["estimated_completion_tokens_first_round"] == 12 * 8
    assert sql(cat, "select count(*) from runs")[1][0][0] == 0 and len(cat.generations()) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_cleanly_and_resumes(tmp_path: Path, tiny_model_dir: Path, backend: Any, sig: int,
                                          capsys: Any) -> None:
    cat = make_catalog(tmp_path)
    recipe = make_recipe(tmp_path, tiny_model_dir)
    # What the handlers were before (SIG_IGN under nohup or a background job, the default otherwise).
    before = {n: signal.getsignal(n) for n in (signal.SIGINT, signal.SIGTERM)}
    # A real signal to this process during the second backend call (round 2).
    interrupted = CountingBackend(backend, fail_on_call=2, fault=lambda: os.kill(os.getpid(), sig))
    s = generate_from_recipe(recipe, cat, judges=JUDGES, backend=interrupted, progress=False)
    assert s["status"] == "interrupted" and "resume" in s["message"]
    assert "r1f generate" in capsys.readouterr().err
    first = cat.generations(run_id=s["run_id"])
    assert len(first) == 12  # round 1 committed, round 2 not
    assert len(cat.verdicts(first["generation_id"].to_list())) == 12
    assert {n: signal.getsignal(n) for n in before} == before  # handlers restored
    done = generate_from_recipe(recipe, cat, judges=JUDGES, backend=CountingBackend(backend), progress=False)
    assert done["status"] == "complete"
    final = cat.generations(run_id=s["run_id"])
    assert set(first["generation_id"]) <= set(final["generation_id"]) and final["generation_id"].n_unique() == len(final)
    assert done["samples_generated"] == len(final) - 12


def test_failing_backend_stops_with_resume_message(tmp_path: Path, tiny_model_dir: Path, backend: Any) -> None:
    cat = make_catalog(tmp_path)

    def boom() -> None:
        raise ConnectionError("server at http://127.0.0.1:1/v1 kept failing after 6 retries")

    failing = CountingBackend(backend, fail_on_call=2, fault=boom)
    with pytest.raises(GenerationStopped) as e:
        generate_from_recipe(make_recipe(tmp_path, tiny_model_dir), cat, judges=JUDGES, backend=failing,
                             progress=False)
    msg = str(e.value)
    assert "kept failing" in msg and "committed" in msg and "to resume" in msg
    assert e.value.summary["status"] == "backend_failed" and e.value.summary["samples_generated"] == 12
    assert len(cat.generations()) == 12
    assert stats(cat)["easy: what is 1+1?"]["status"] == "solved"


def test_openai_backend_from_recipe(tmp_path: Path, vllm_server: str, caplog: Any) -> None:
    # The recipe builds the backend itself (get_backend("openai", ...)) against a real vLLM server.
    caplog.set_level(logging.INFO, logger="factory")
    cat = make_catalog(tmp_path, PROBLEMS[:4])
    p = tmp_path / "openai.yaml"
    p.write_text(
        f"backend: {{name: openai, model: tiny, base_url: '{vllm_server}', api_key_env: R1F_TEST_NO_KEY, "
        "max_concurrency: 8, max_retries: 1}\n"
        "template: {name: r1_zero}\n"
        "sampling: {temperature: 1.0, max_tokens: 8}\n"
        "samples_per_prompt: 2\nbudget: {max_samples: 4, round_size: 2, retry_samples: 2}\n"
        "judges: [simulated]\n")
    s = generate_from_recipe(p, cat, judges=JUDGES, progress=False)
    assert s["status"] == "complete" and s["samples_total"] == s["samples_generated"] > 0
    st = stats(cat)
    assert st["easy: what is 1+1?"]["status"] == "solved" and st["impossible: prove P != NP"]["status"] == "unsolved"
    gens = cat.generations(run_id=s["run_id"])
    assert all(g["completion_tokens"] and g["seed"] == sample_seed(g["generation_id"]) for g in gens.to_dicts())
    # Not a terminal: no bar, but the progress lines are logged.
    assert "prompts 4/4" in caplog.text and "summary: status=complete" in caplog.text
    again = generate_from_recipe(p, cat, judges=JUDGES, progress=False)
    assert again["samples_generated"] == 0


def test_progress_quiet_without_terminal_but_logs(tmp_path: Path) -> None:
    # stdout is a pipe here: no bar on stdout, and with no logging configured the lines still reach stderr.
    import subprocess
    import sys

    code = ("from catalogs.progress import RunProgress, print_summary\n"
            "with RunProgress(3) as p:\n"
            "    p.update(prompts_done=1, accepted=2, generated=4, new_tokens=100)\n"
            "print_summary({'status': 'complete', 'prompts': 3})\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                       cwd=Path(__file__).resolve().parents[2], timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert "prompts 1/3, accepted 2 | accept rate 50%" in r.stderr


def test_registry_judges_from_the_recipe(tmp_path: Path, tiny_model_dir: Path, backend: Any) -> None:
    # No judges passed in: the recipe's names resolve through judges/registry.py.
    from judges.registry import JUDGES as REGISTERED

    cat = make_catalog(tmp_path, PROBLEMS[:3])
    p = tmp_path / "r.yaml"
    p.write_text(f"backend: {{name: vllm, model: {tiny_model_dir}}}\nsampling: {{max_tokens: 8}}\n"
                 "samples_per_prompt: 1\nbudget: {max_samples: 2, round_size: 1, retry_samples: 1}\n"
                 "judges: [format, {name: math_accuracy}]\n")
    s = generate_from_recipe(p, cat, backend=backend, progress=False)
    gens = cat.generations(run_id=s["run_id"])
    vs = cat.verdicts(gens["generation_id"].to_list())
    assert len(vs) == 2 * len(gens)
    for name in ("format", "math_accuracy"):
        mine = vs.filter(vs["judge"] == name)
        assert len(mine) == len(gens) and set(mine["judge_version"]) == {REGISTERED[name].version}
    passed_both = {g for g in gens["generation_id"]
                   if all(vs.filter(vs["generation_id"] == g)["passed"].to_list())}
    assert s["accepted_total"] == len(passed_both)
    assert sum(r["accepted"] for r in stats(cat).values()) == len(passed_both)


def test_server_that_keeps_failing_stops_then_resumes(tmp_path: Path, vllm_server: str) -> None:
    """The openai backend through a fault proxy in front of the real server: after round 1 the server answers
    500 to everything, the run stops after the retry limit with round 1 committed and says how to resume; once
    the server is healthy again, the same recipe generates only what is missing."""
    from tests.factory.fault_proxy import FaultProxy

    cat = make_catalog(tmp_path, PROBLEMS[:4])
    with FaultProxy(vllm_server) as proxy:
        p = tmp_path / "flaky.yaml"
        p.write_text(
            f"backend: {{name: openai, model: tiny, base_url: '{proxy.base_url}', api_key_env: R1F_TEST_NO_KEY, "
            "max_concurrency: 8, max_retries: 2, timeout_s: 30}\n"
            "template: {name: r1_zero}\n"
            "sampling: {temperature: 1.0, max_tokens: 8}\n"
            "samples_per_prompt: 2\nbudget: {max_samples: 4, round_size: 2, retry_samples: 2}\n"
            "judges: [simulated]\n")
        # Round 1: 4 prompts x 2 seeded samples = 8 requests pass; everything after fails.
        proxy.schedule(["ok"] * 8, default="500")
        with pytest.raises(GenerationStopped) as e:
            generate_from_recipe(p, cat, judges=JUDGES, progress=False)
        assert "HTTP 500" in str(e.value) and "to resume" in str(e.value)
        round1 = cat.generations()
        assert len(round1) == 8 and "500" in proxy.seen
        proxy.schedule([])  # healthy again
        done = generate_from_recipe(p, cat, judges=JUDGES, progress=False)
    assert done["status"] == "complete"
    final = cat.generations()
    assert final["generation_id"].n_unique() == len(final)  # nothing twice
    assert set(round1["generation_id"]) <= set(final["generation_id"])  # nothing lost
    assert done["samples_generated"] == len(final) - 8  # round 1 not paid for again
