"""Code: run the generation's program against the prompt's tests in the sandbox.

Test formats understood (`Sample.tests` is a JSON string; Python-literal strings, as the rllm
datasets store them, are accepted too):
- stdin/stdout pairs: `[{"input": ..., "output": ...}, ...]` (codeforces / code_contests) or
  `{"inputs": [...], "outputs": [...]}` (APPS).
- `{"functional": CODE}`: leetcode `check(candidate)` code that calls itself; one test.
- `{"test_list": [asserts], "test_setup_code": ..., "test_imports": [...]}` (MBPP) or a bare list of
  assert strings: each assert is one test.
- `{"test": CODE, "entry_point": NAME}` (HumanEval): `check(NAME)` is one test.
Score = share of tests passed; passed only when all pass.

Without a working sandbox the judge raises `SandboxUnavailable` (a UserError naming why) rather than
returning a verdict: the program never ran, and a stored failed verdict would mark correct code wrong.
"""
from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from catalogs.records import Sample, Verdict, verdict
from judges.base import JudgeSpec, params_model
from judges.sandbox import (
    Limits,
    RunResult,
    SandboxUnavailable,
    isolation_available,
    isolation_problem,
    run_python,
)

NAME = "code"
VERSION = "1"

# Solutions to leetcode-style prompts assume these names (List, defaultdict, ...) are in scope.
PRELUDE = ("from typing import *\nimport math, collections, heapq, itertools, bisect, functools, re, string, sys\n"
           "from collections import *\nfrom itertools import *\nfrom functools import *\nfrom heapq import *\n"
           "from bisect import *\nfrom math import *\n")

_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.DOTALL)


@dataclass(frozen=True)
class TestCase:
    kind: str  # "stdio" | "assert"
    stdin: str = ""
    expected: str = ""
    code: str = ""  # assert-style: code appended after the program


def extract_program(text: str, languages: Sequence[str] = ("python", "py", "python3"),
                    any_fence_fallback: bool = True) -> str | None:
    """The last fenced block in one of `languages`; else the last fenced block of any language."""
    blocks = _FENCE.findall(text)
    tagged = [body for lang, body in blocks if lang.lower() in languages]
    if tagged:
        return tagged[-1]
    if any_fence_fallback and blocks:
        return blocks[-1][1]
    return None


def _load(tests: str) -> Any:
    # Python literals ("[{'input': ...}]") are accepted, as `r1f ingest` does (it stores them as JSON);
    # literal_eval evaluates no code.
    try:
        return json.loads(tests)
    except (json.JSONDecodeError, TypeError):
        return ast.literal_eval(tests)


def parse_tests(tests: str | list | dict | None) -> tuple[str, list[TestCase]]:
    """(format name, test cases) from a JSON string (or the decoded object). ValueError if unknown."""
    if tests is None or not str(tests).strip():
        raise ValueError("no tests")
    obj = _load(tests) if isinstance(tests, (str, bytes)) else tests
    if isinstance(obj, str):  # doubly encoded
        obj = _load(obj)
    if isinstance(obj, list) and obj and all(isinstance(t, dict) and "input" in t and "output" in t for t in obj):
        return "stdio", [TestCase("stdio", stdin=str(t["input"]), expected=str(t["output"])) for t in obj]
    if isinstance(obj, list) and obj and all(isinstance(t, str) for t in obj):
        return "asserts", [TestCase("assert", code=t) for t in obj]
    if isinstance(obj, dict):
        if isinstance(obj.get("inputs"), list) and isinstance(obj.get("outputs"), list) \
                and len(obj["inputs"]) == len(obj["outputs"]) and obj["inputs"]:
            return "stdio", [TestCase("stdio", stdin=str(i), expected=str(o))
                             for i, o in zip(obj["inputs"], obj["outputs"])]
        if isinstance(obj.get("functional"), str):
            return "functional", [TestCase("assert", code=obj["functional"])]
        if isinstance(obj.get("test_list"), list) and obj["test_list"]:
            setup = "\n".join(list(obj.get("test_imports") or []) + [obj.get("test_setup_code") or ""])
            return "mbpp", [TestCase("assert", code=setup + "\n" + t) for t in obj["test_list"]]
        if isinstance(obj.get("test"), str) and obj.get("entry_point"):
            return "humaneval", [TestCase("assert", code=obj["test"] + f"\n\ncheck({obj['entry_point']})\n")]
    raise ValueError("unknown test format")


def outputs_match(got: str, expected: str, float_tol: float = 1e-6) -> bool:
    """Token-wise comparison, whitespace-insensitive; numbers equal within `float_tol`."""
    a, b = got.split(), expected.split()
    if a == b:
        return True
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            return False
        if abs(fx - fy) > float_tol * max(1.0, abs(fy)):
            return False
    return True


def _run_case(program: str, case: TestCase, limits: Limits, unsafe_local: bool) -> tuple[bool, RunResult]:
    if case.kind == "stdio":
        res = run_python(program, case.stdin, limits, unsafe_local=unsafe_local)
        return res.ok and outputs_match(res.stdout, case.expected), res
    res = run_python(PRELUDE + program + "\n\n" + case.code + "\n", "", limits, unsafe_local=unsafe_local)
    return res.ok, res


def judge(sample: Sample, *, limits: Limits | None = None, unsafe_local: bool = False,
          languages: Sequence[str] = ("python", "py", "python3"), stop_on_first_failure: bool = False,
          max_tests: int | None = None) -> Verdict:
    limits = limits or Limits()
    source = sample.answer if sample.answer.strip() else sample.text
    program = extract_program(source, languages)
    if program is None or not program.strip():
        return verdict(NAME, VERSION, 0.0, False, "no_code_block")
    if sample.tests is None or not str(sample.tests).strip():
        return verdict(NAME, VERSION, 0.0, False, "no_tests")
    try:
        fmt, cases = parse_tests(sample.tests)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return verdict(NAME, VERSION, 0.0, False, "unknown_test_format")
    if max_tests is not None:
        cases = cases[:max_tests]
    if isolation_available() is None and not unsafe_local:
        raise SandboxUnavailable(f"the code judge cannot run programs here: no working sandbox "
                                 f"({isolation_problem()}); nothing was judged. Install bubblewrap "
                                 f"(apt-get install bubblewrap) and run as root or with user namespaces "
                                 f"enabled, or pass unsafe_local=True to run model code unsandboxed.")
    passed = 0
    failures: list[dict[str, Any]] = []
    for i, case in enumerate(cases):
        ok, res = _run_case(program, case, limits, unsafe_local)
        if ok:
            passed += 1
            continue
        if len(failures) < 3:
            failures.append({"test": i, "returncode": res.returncode, "timed_out": res.timed_out,
                             "output_truncated": res.output_truncated, "process_limit": res.process_limit_hit,
                             "stderr": res.stderr[-300:]})
        if stop_on_first_failure:
            break
    score = passed / len(cases)
    all_ok = passed == len(cases)
    if all_ok:
        reason = "correct"
    elif any(f["timed_out"] for f in failures):
        reason = "timeout"
    elif any(f["returncode"] not in (0, None) for f in failures):
        reason = "runtime_error" if passed == 0 else "wrong_answer"
    else:
        reason = "wrong_answer"
    return verdict(NAME, VERSION, score, all_ok, reason, test_format=fmt, tests=len(cases), tests_passed=passed,
                   failures=failures)


def judge_many(samples: Sequence[Sample], workers: int = 2, **params: Any) -> list[Verdict]:
    """Verdicts in order. Each test is its own process, so threads keep all `workers` cores busy."""
    if workers <= 1:
        return [judge(s, **params) for s in samples]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda s: judge(s, **params), samples))


JUDGE = JudgeSpec(NAME, VERSION, "rule", params_model(judge), judge=judge, many=judge_many, batch_rewards=True)
