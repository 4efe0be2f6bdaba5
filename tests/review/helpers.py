"""A real review server in its own process, and a real headless Chromium (Debian's package) to drive it."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.catalogs.helpers import r1f, write_generations

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

JUDGE_RECIPE = "judges:\n  - name: math_accuracy\n  - name: format\nworkers: 1\n"


def judged_catalog(tmp: Path, n_prompts: int = 3, per_prompt: int = 3, rows: list[dict] | None = None,
                   source: str = "toy") -> Path:
    """Imported R1-style traces (sample 1 of each prompt has a wrong answer; or `rows`), judged by math and
    format."""
    data = tmp / "traces.jsonl"
    if rows is None:
        write_generations(data, n_prompts=n_prompts, per_prompt=per_prompt)
    else:
        data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    cat = tmp / "cat"
    r1f("ingest", str(data), "--generations", "--model", "deepseek-r1", "--source", source, catalog=cat)
    recipe = tmp / "judge.yaml"
    recipe.write_text(JUDGE_RECIPE)
    r1f("judge", str(recipe), catalog=cat)
    return cat


@contextmanager
def review_server(cat: Path, *args: str, reviewer: str = "alice") -> Iterator[str]:
    """`r1f review --port 0` in a process of its own; yields the page's address, stops it with Ctrl+C."""
    cmd = [sys.executable, "-m", "r1f", "review", "--catalog", str(cat), "--port", "0", "--reviewer", reviewer, *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    seen = []
    try:
        deadline = time.monotonic() + 300  # only gives up on a server that never starts
        url = None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line)
            m = re.search(r"review page: (http://127\.0\.0\.1:\d+/)", line)
            if m:
                url = m.group(1)
                break
        assert url, f"r1f review did not start:\n{''.join(seen)}{proc.stdout.read() if proc.poll() is not None else ''}"
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                rest = proc.communicate(timeout=30)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise
            # Stopping prints the session's summary: accept rate and agreement with the machine judges.
            assert proc.returncode == 0 and "accept_rate" in rest, rest


@contextmanager
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
