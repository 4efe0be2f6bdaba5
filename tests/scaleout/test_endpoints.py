"""Several OpenAI-compatible endpoints in one recipe: two real vLLM servers, load-balanced; one is killed mid-run
and the run completes on the other, with the same samples a run on one server makes."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from backends import ChatRequest, get_backend
from backends.config import BackendConfig, backend_kwargs
from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest
from factory.generate import generate_from_recipe, prepare_recipe
from tests.helpers import (
    SERVED_MODEL_NAME,
    SINGLE_PROCESS_ENGINE,
    assert_same_samples,
    start_vllm_server,
    stop_process_group,
)

PROBLEMS = [f"Compute {i} times {i + 1}." for i in range(16)]


def recipe_text(urls: list[str]) -> str:
    return (f"backend: {{name: openai, model: {SERVED_MODEL_NAME}, base_url: {json.dumps(urls)}, "
            "max_concurrency: 8, max_retries: 6}\n"
            "sampling: {temperature: 1.0, top_p: 1.0, max_tokens: 64}\n"
            "samples_per_prompt: 4\n"
            "budget: {max_samples: 4, round_size: 4, retry_samples: 0}\n"
            "judges: []\n")


def make_catalog(path: Path, src: Path) -> Catalog:
    cat = Catalog(path)
    ingest(cat, src, IngestOptions(source="endpoints", kind="reasoning", domain="math"))
    return cat


def test_bad_endpoint_lists_are_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        BackendConfig(name="openai", model="m", base_url=["http://a/v1", "ftp://b"])
    with pytest.raises(ValueError, match="same URL twice"):
        BackendConfig(name="openai", model="m", base_url=["http://a/v1", "http://a/v1"])
    with pytest.raises(ValueError, match="required"):
        BackendConfig(name="openai", model="m", base_url=[])


def test_two_replicas_one_killed_mid_run(tmp_path: Path, tiny_model_dir: Path, vllm_server: str) -> None:
    replica, url_b = start_vllm_server(tiny_model_dir, tmp_path / "replica.log", extra_env=SINGLE_PROCESS_ENGINE)
    try:
        src = tmp_path / "prompts.jsonl"
        src.write_text("\n".join(json.dumps({"problem": p, "answer": "1"}) for p in PROBLEMS) + "\n")
        recipe_path = tmp_path / "two.yaml"
        recipe_path.write_text(recipe_text([vllm_server, url_b]))
        recipe = prepare_recipe(recipe_path)
        backend = get_backend(recipe.backend.name, **backend_kwargs(recipe.backend))
        assert [h["url"] for h in backend.health()] == [vllm_server, url_b]
        # Both replicas serve a first request (two at once: the second goes to the one with none in flight).
        hello = ChatRequest(messages=[{"role": "user", "content": "hello"}], max_tokens=8, seed=0)
        backend.generate([hello, hello])
        assert [h["served"] for h in backend.health()] == [1, 1]

        # Kill replica B (the whole process group, -9) while the run has requests in flight on it. Two vLLM servers
        # on two cores are not equally fast, so "once B has served one of the run's requests" could come after the
        # run; in flight is early (the run's first requests alternate between the replicas) and certain.
        killed = threading.Event()

        def kill_b() -> None:
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not killed.is_set():
                if backend.health()[1]["in_flight"] >= 1:
                    os.killpg(replica.pid, signal.SIGKILL)
                    killed.set()
                    return
                time.sleep(0.01)

        watcher = threading.Thread(target=kill_b, daemon=True)
        watcher.start()
        cat = make_catalog(tmp_path / "two", src)
        summary = generate_from_recipe(recipe, cat, backend=backend, progress=False)
        killed_during_run = killed.is_set()
        killed.set()
        watcher.join(timeout=5)
        health = backend.health()
        backend.close()
    finally:
        stop_process_group(replica)

    assert replica.poll() is not None
    assert killed_during_run, health  # B died while requests were still to come, not after the run
    assert summary["status"] == "complete", summary
    assert summary["samples_total"] == len(PROBLEMS) * 4
    a, b = health
    assert b["served"] >= 1 and b["failed"] >= 1, health  # B served, then failed (its requests in flight) and rested
    assert a["served"] > b["served"], health  # the rest went to A
    assert "connection" in (b["last_error"] or "").lower(), health

    # The same recipe on A alone makes the same samples: same ids and seeds, whichever replica served each.
    one = tmp_path / "one.yaml"
    one.write_text(recipe_text([vllm_server]))
    ref_cat = make_catalog(tmp_path / "one", src)
    ref = generate_from_recipe(one, ref_cat, progress=False)
    assert ref["run_id"] == summary["run_id"]  # the endpoints are where a run is served, not what it is
    # Same ids, seeds and texts: both replicas serve the same weights, seeded per sample.
    assert_same_samples(cat, ref_cat, summary["run_id"])
    assert len(cat.generations(run_id=summary["run_id"])) == len(PROBLEMS) * 4
