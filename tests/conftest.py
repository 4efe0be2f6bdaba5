"""Session-wide fixtures: the tiny model on disk, one shared in-process vLLM engine, one vLLM server.

Each fixture is lazy: a test run that asks for none of them builds nothing and starts no engine.
Engine start costs 20-60 s on the CPU, so every test shares the same `vllm_llm` and `vllm_server`.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakehub import FakeHub
from tests.helpers import (
    ENGINE_KWARGS,
    SINGLE_PROCESS_ENGINE,
    launch_vllm_server,
    serve_or_relaunch,
    stop_process_group,
)

# The CPU build of vLLM sizes its KV cache from this (GiB); set it before vllm is imported anywhere.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")



@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of the tiny Qwen2 model and tokenizer, built once per test run."""
    from factory.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


_SERVER_NEEDED = False


def pytest_collection_finish(session: pytest.Session) -> None:
    # Known only after collection and deselection: whether any selected test needs the server.
    global _SERVER_NEEDED
    _SERVER_NEEDED = any("vllm_server" in getattr(item, "fixturenames", ()) for item in session.items)


@pytest.fixture(scope="session")
def vllm_llm(tiny_model_dir: Path, request: pytest.FixtureRequest) -> Iterator[object]:
    """One `vllm.LLM` on the tiny model, shared by every test in the run."""
    import vllm

    if _SERVER_NEEDED:
        # The server will be needed later in this run: let it load while this engine loads.
        request.getfixturevalue("_vllm_server_process")

    from backends.vllm_backend import cpu_safe_engine_kwargs

    llm = vllm.LLM(model=str(tiny_model_dir), **cpu_safe_engine_kwargs(ENGINE_KWARGS))
    yield llm
    try:
        llm.llm_engine.engine_core.shutdown()
    except Exception as exc:  # noqa: BLE001  teardown must not mask a test failure; the engine dies with us
        print(f"vllm_llm teardown: engine shutdown failed: {exc!r}", file=sys.stderr)


@pytest.fixture(scope="session")
def _vllm_server_process(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
                         ) -> Iterator[tuple[list[Any], Path]]:
    """([process, base_url], log path) of the launched server; `vllm_server` may relaunch it in place."""
    log_path = tmp_path_factory.mktemp("vllm-server") / "server.log"
    server = list(launch_vllm_server(tiny_model_dir, log_path, extra_env=SINGLE_PROCESS_ENGINE))
    yield server, log_path
    stop_process_group(server[0])


@pytest.fixture(scope="session")
def vllm_server(_vllm_server_process: tuple[list[Any], Path], tiny_model_dir: Path) -> str:
    """Base URL (http://127.0.0.1:PORT/v1) of a real vLLM OpenAI-compatible server serving the tiny
    model as model name "tiny"; stopped at the end of the run."""
    server, log_path = _vllm_server_process
    return serve_or_relaunch(server, tiny_model_dir, log_path, extra_env=SINGLE_PROCESS_ENGINE)


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    """A local fake of the Hub's HTTP API (tests/fakehub.py), stopped after the test."""
    server = FakeHub()
    yield server
    server.close()
