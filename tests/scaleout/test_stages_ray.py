"""`r1f judge` and `r1f filter` with `--engine ray` on the real two-node cluster: the same verdicts and decisions
as the local engine, row by row; the code judge's sandbox runs on the workers, and a cluster where no worker has
an isolation tool is refused before anything is judged."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest
from tests.filters.helpers import EN_COT, FR_PARAGRAPH, ZH_COT
from tests.scaleout.conftest import REPO, RayCluster
from tests.scaleout.test_generate_ray import R1F

DATA = REPO / "tests" / "data"
FILTER_DATA = REPO / "tests" / "filters" / "data"


def generations() -> list[dict]:
    """Math with right and wrong boxed answers, planted filter cases (mixed language, duplicates, a code block, a
    benchmark problem), and programs for the code judge, right and wrong."""
    out = []
    for i, line in enumerate((DATA / "math_40.jsonl").read_text().splitlines()[:30]):
        p = json.loads(line)
        answer = p["answer"] if i % 3 else "12345"
        cot = (EN_COT if i % 5 else f"{EN_COT}\n\n{ZH_COT}").replace("x^2", f"x^{i + 2}")
        out.append({"problem": p["problem"], "answer": p["answer"], "domain": "math",
                    "response": f"<think>\n{cot}\n</think>\n\nSo the answer is $\\boxed{{{answer}}}$."})
    out.append({"problem": "Solve x^2 + 3x = 10 for positive x (again).", "answer": "2", "domain": "math",
                "response": f"<think>\n{EN_COT}\n</think>\n\n\\boxed{{2}}"})
    out.append({"problem": "Solve x^2 + 3x = 10, with code.", "answer": "2", "domain": "math",
                "response": f"<think>\n{EN_COT}\n\n```python\nprint(2)\n```\n</think>\n\n\\boxed{{2}}"})
    bench = json.loads((FILTER_DATA / "math500.jsonl").read_text().splitlines()[3])["problem"]
    out.append({"problem": bench, "answer": "2", "domain": "math",
                "response": f"<think>\n{FR_PARAGRAPH}\n\n{EN_COT}\n</think>\n\n\\boxed{{2}}"})
    tests = json.dumps([{"input": "1 2\n", "output": "3"}, {"input": "5 7\n", "output": "12"}])
    for i, body in enumerate(["a, b = map(int, input().split())\nprint(a + b)",
                              "a, b = map(int, input().split())\nprint(a - b)",
                              "import sys\nprint(sum(map(int, sys.stdin.read().split())))"]):
        out.append({"problem": f"Read two integers and print their sum (variant {i}).", "tests": tests,
                    "domain": "code", "response": f"<think>\nAdd them.\n</think>\n\n```python\n{body}\n```"})
    return out


def make_catalog(path: Path, src: Path) -> Catalog:
    cat = Catalog(path)
    ingest(cat, src, IngestOptions(source="stages", generations=True, model="m"))
    return cat


def rows(cat: Catalog, sql: str) -> list[tuple]:
    with cat.reader() as con:
        return con.execute(sql).fetchall()


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*R1F, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def test_judge_and_filter_on_ray_equal_local(tmp_path: Path, ray_cluster: RayCluster) -> None:
    src = tmp_path / "gens.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in generations()))
    make_catalog(tmp_path / "local", src)
    shutil.copytree(tmp_path / "local", tmp_path / "ray")
    local_cat, ray_cat = Catalog(tmp_path / "local"), Catalog(tmp_path / "ray")
    judge = tmp_path / "judge.yaml"
    judge.write_text("judges:\n"
                     "  - {name: math_accuracy, where: \"domain = 'math'\"}\n"
                     "  - {name: format}\n"
                     "  - {name: language_consistency, where: \"domain = 'math'\"}\n"
                     "  - {name: code, where: \"domain = 'code'\"}\n"
                     "batch_rows: 8\n")
    filters = tmp_path / "filters.yaml"
    filters.write_text("filters:\n"
                       "  - {name: hygiene}\n  - {name: language_mixing}\n  - {name: long_paragraphs}\n"
                       "  - {name: code_blocks}\n  - {name: dedup, params: {field: reasoning}}\n"
                       f"  - {{name: decontamination, params: {{benchmark_files: [{FILTER_DATA / 'math500.jsonl'}]}}}}\n"
                       "batch_rows: 8\n")
    env = ray_cluster.env
    logs = {}
    for args in (["judge", str(judge)], ["filter", str(filters)]):
        local = run(*args, "--catalog", str(tmp_path / "local"), "--json")
        assert local.returncode == 0, local.stderr[-3000:]
        on_ray = run(*args, "--catalog", str(tmp_path / "ray"), "--json", "--engine", "ray", "--address",
                     ray_cluster.address, env=env)
        assert on_ray.returncode == 0, on_ray.stderr[-3000:]
        assert json.loads(on_ray.stdout) == json.loads(local.stdout)
        logs[args[0]] = on_ray.stderr
    # Each node was asked for its sandbox before the code judge ran there.
    assert logs["judge"].count(": sandbox bwrap") + logs["judge"].count(": sandbox unshare") == 2, logs["judge"]

    verdicts = "SELECT generation_id, judge, judge_version, score, passed, reason, details FROM verdicts ORDER BY ALL"
    decisions = ("SELECT generation_id, filter, filter_version, params_hash, passed, reason, value FROM "
                 "filter_decisions ORDER BY ALL")
    assert rows(ray_cat, verdicts) == rows(local_cat, verdicts)
    assert rows(ray_cat, decisions) == rows(local_cat, decisions)
    # The planted cases were decided as planted: code ran in the sandbox (one right program of three wrong-ish),
    # dedup kept the first seen in catalog order, decontamination caught the benchmark problem.
    code = dict(rows(ray_cat, "SELECT p.problem, v.passed FROM verdicts v JOIN generation_meta g USING "
                              "(generation_id) JOIN prompts p USING (prompt_id) WHERE v.judge = 'code'"))
    assert sorted(code.values()) == [False, True, True], code
    assert rows(ray_cat, "SELECT count(*) FROM filter_decisions WHERE filter = 'decontamination' AND NOT passed") \
        == [(1,)]
    assert rows(ray_cat, "SELECT count(*) FROM filter_decisions WHERE filter = 'dedup' AND NOT passed")[0][0] >= 1

    # Again on Ray: everything is cached, nothing is decided twice.
    again = run("judge", str(judge), "--catalog", str(tmp_path / "ray"), "--json", "--engine", "ray", "--address",
                ray_cluster.address, env=env)
    assert again.returncode == 0 and all(v["judged"] == 0 for v in json.loads(again.stdout).values())


def test_code_judge_refused_where_no_worker_has_a_sandbox(tmp_path: Path, ray_cluster: RayCluster) -> None:
    src = tmp_path / "gens.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in generations()[-3:]))
    make_catalog(tmp_path / "cat", src)
    judge = tmp_path / "judge.yaml"
    judge.write_text("judges: [{name: code}]\n")
    # The job's workers run with a PATH that has bash (Ray starts workers through it) but neither bwrap nor
    # unshare, set as `ray job submit --runtime-env-json` sets it: no node of the job can isolate code.
    tools = tmp_path / "tools"
    tools.mkdir()
    (tools / "bash").symlink_to(shutil.which("bash") or "/bin/bash")
    env = dict(ray_cluster.env, RAY_JOB_CONFIG_JSON_ENV_VAR=json.dumps(
        {"runtime_env": {"env_vars": {"PATH": str(tools)}}}))
    res = run("judge", str(judge), "--catalog", str(tmp_path / "cat"), "--engine", "ray", "--address",
              ray_cluster.address, env=env)
    assert res.returncode == 2, res.stderr[-3000:]
    assert "no node of the Ray cluster has a working one" in res.stderr
    assert "bwrap: not installed" in res.stderr and "apt-get install bubblewrap" in res.stderr
    assert "Traceback" not in res.stderr
    assert rows(Catalog(tmp_path / "cat"), "SELECT count(*) FROM verdicts") == [(0,)]
