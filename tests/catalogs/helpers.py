"""Shared helpers for the catalog tests: real files on disk, real subprocesses."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data"
R1F = [sys.executable, "-m", "r1f"]


def r1f(*args: str, catalog: Path | None = None, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [*R1F, *args] + (["--catalog", str(catalog)] if catalog is not None else [])
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def fingerprint(catalog: Path) -> str:
    """Bytes of the DuckDB file plus the list of shard files: equal fingerprints, identical catalogs."""
    h = hashlib.sha256()
    db = catalog / "catalog.duckdb"
    if db.exists():
        h.update(db.read_bytes())
    for p in sorted((catalog / "shards").glob("*")) if (catalog / "shards").exists() else []:
        h.update(p.name.encode())
    return h.hexdigest()


def write_generations(path: Path, n_prompts: int = 10, per_prompt: int = 3, long: bool = False) -> list[dict]:
    """R1-style responses for math prompts: some right, some wrong, one with separate reasoning_content."""
    rows = []
    for i in range(n_prompts):
        for j in range(per_prompt):
            answer = str(i * 7) if j != 1 else str(i * 7 + 1)
            cot = f"Let me compute {i} times 7 step by step. " * (400 if long else 3)
            row = {"problem": f"What is {i} times 7?", "answer": str(i * 7),
                   "response": f"<think>\n{cot}\nWait, let me verify: {i}*7 = {answer}.\n</think>\n\n"
                               f"The answer is \\boxed{{{answer}}}.",
                   "finish_reason": "stop", "completion_tokens": 50 + j}
            if j == 2:
                row["response"] = f"The answer is \\boxed{{{answer}}}."
                row["reasoning_content"] = cot + " 思考一下。"
            rows.append(row)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return rows
