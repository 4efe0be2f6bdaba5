"""The sandbox's PID namespace: the program sees only its own processes, the judge works when it runs
inside a PID namespace itself (containers, Ray workers), and the wall-clock kill leaves no zombies.

All real: real bwrap/unshare, real host processes with a secret in their command line, and a real
outer PID namespace made with `unshare --pid --fork --mount-proc` around a child Python that judges.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from judges.sandbox import Limits, isolation_available, run_python
from tests.judges.leftovers import reaper, sandbox_descendants

ROOT = Path(__file__).resolve().parents[2]
# Generous: a program that has to finish gets its time however loaded the machine is.
LIMITS = Limits(cpu_s=2, wall_s=60.0, memory_mb=512)
SECRET = "r1f-cmdline-secret-" + hashlib.sha256(os.urandom(16)).hexdigest()[:16]

needs_sandbox = pytest.mark.skipif(isolation_available() is None, reason="no bwrap/unshare on this machine")


def _can_nest_pid_namespace(mount_proc: bool) -> bool:
    if shutil.which("unshare") is None:
        return False
    cmd = ["unshare", "--pid", "--fork", *(["--mount-proc"] if mount_proc else []), "true"]
    return subprocess.run(cmd, capture_output=True, timeout=20, check=False).returncode == 0


def _isolations() -> list[str]:
    """Every isolation that works here, each tested on its own (the fallback must hold too)."""
    found = []
    if isolation_available() == "bwrap":
        found.append("bwrap")
    if shutil.which("unshare") and os.geteuid() == 0:
        found.append("unshare")
    return found


PROC_SPY = textwrap.dedent("""
    import json, os
    pids = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
    cmdlines = {}
    for p in pids + [1, HOST_PID]:
        try:
            cmdlines[str(p)] = open(f'/proc/{p}/cmdline', 'rb').read().decode('utf-8', 'replace')
        except OSError as e:
            cmdlines[str(p)] = 'unreadable: ' + type(e).__name__
    print(json.dumps({'me': os.getpid(), 'pids': pids, 'cmdlines': cmdlines}))
""")


@needs_sandbox
@pytest.mark.parametrize("isolation", _isolations())
def test_sandbox_sees_only_its_own_processes(isolation: str) -> None:
    # A host process whose command line carries a secret, as a token or URL often does.
    host = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)", f"--token={SECRET}"])
    try:
        res = run_python(PROC_SPY.replace("HOST_PID", str(host.pid)), limits=LIMITS, isolation=isolation)
        assert res.returncode == 0, res.stderr
        seen = json.loads(res.stdout)
        assert SECRET not in res.stdout
        # bwrap: its own init (1) and the program (2); unshare: the program alone.
        assert set(seen["pids"]) <= {1, 2} and seen["me"] in (1, 2), seen["pids"]
        assert host.pid not in seen["pids"] or host.pid <= 2
        if host.pid > 2:
            assert seen["cmdlines"][str(host.pid)].startswith("unreadable"), seen["cmdlines"]
        host_init = Path("/proc/1/cmdline").read_bytes().decode("utf-8", "replace")
        assert seen["cmdlines"]["1"] != host_init or not host_init
    finally:
        host.kill()
        host.wait()


@needs_sandbox
@pytest.mark.parametrize("isolation", _isolations())
def test_wall_clock_kill_leaves_no_processes(isolation: str) -> None:
    # A program that spawns helpers in their own sessions and then outlives the wall-clock limit.
    program = textwrap.dedent("""
        import os, time
        for _ in range(3):
            if os.fork() == 0:
                os.setsid()
                time.sleep(60)
                os._exit(0)
        time.sleep(60)
    """)
    # This process reaps its descendants' orphans meanwhile: a sandbox process that lost its parent comes
    # here, zombie or not, rather than to the host's init, where it could not be told from other jobs'.
    # (In a whole test run this process has other children too: the shared vLLM engine and server, Ray.)
    with reaper():
        before = set(sandbox_descendants())
        # The program never ends by itself: it times out however loaded the machine is.
        res = run_python(program, limits=Limits(cpu_s=5, wall_s=1.0), isolation=isolation)
        assert res.timed_out and res.returncode is None
        left = sandbox_descendants(before)
    assert left == {}  # nothing the sandbox started survives, not even a zombie, nor was handed to init


CHILD = textwrap.dedent("""
    import json, os, textwrap
    from catalogs.records import Sample
    from judges.code import judge
    from judges.sandbox import Limits, isolation_available, run_python

    tests = json.dumps([{"input": "3 4", "output": "7"}, {"input": "10 -2", "output": "8"}])
    def sample(program):
        return Sample(answer="```python\\n" + program + "\\n```", tests=tests)
    good = judge(sample("a, b = map(int, input().split())\\nprint(a + b)"), limits=Limits(cpu_s=2, wall_s=60))
    bad = judge(sample("a, b = map(int, input().split())\\nprint(a - b)"), limits=Limits(cpu_s=2, wall_s=60))
    spy = run_python("import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))",
                     limits=Limits(wall_s=60))
    slow = run_python("import os, time\\nif os.fork() == 0:\\n    time.sleep(60)\\ntime.sleep(60)",
                      limits=Limits(cpu_s=5, wall_s=1.0))
    left = []
    if os.readlink("/proc/self") == str(os.getpid()):  # /proc is this namespace's: every process in it
        for d in os.listdir("/proc"):
            if d.isdigit() and int(d) != os.getpid():
                try:
                    text = open(f"/proc/{d}/stat").read()
                except OSError:
                    continue
                left.append(text[text.index("(") + 1:text.rindex(")")] + ":" + text.rsplit(")", 1)[1].split()[0])
    try:  # an unreaped child of ours (subprocess reaps all it started): a zombie, seen without /proc
        waitable = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        waitable = None
    print(json.dumps({"pid": os.getpid(), "zombie": None if waitable is None else waitable.si_pid, "isolation": isolation_available(), "good": [good.passed, good.reason],
                      "bad": [bad.passed, bad.reason], "spy": spy.stdout.strip(), "slow_timed_out": slow.timed_out,
                      "left": left}))
""")


def _judge_in_outer_namespace(mount_proc: bool) -> dict:
    cmd = ["unshare", "--pid", "--fork", *(["--mount-proc"] if mount_proc else []), "--kill-child",
           sys.executable, "-c", CHILD]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@needs_sandbox
@pytest.mark.skipif(os.geteuid() != 0 or not _can_nest_pid_namespace(True),
                    reason="needs root to make an outer PID namespace")
def test_code_judge_inside_an_outer_pid_namespace() -> None:
    """The judge as a container's or Ray worker's PID 1: right verdicts, and no zombie after a kill."""
    got = _judge_in_outer_namespace(mount_proc=True)
    assert got["pid"] == 1 and got["isolation"] is not None
    assert got["good"] == [True, "correct"]
    assert got["bad"] == [False, "wrong_answer"]
    assert got["spy"] in ("[1, 2]", "[1]")
    assert got["slow_timed_out"]
    # The judge is its namespace's init: an orphaned sandbox would be its zombie forever.
    assert got["left"] == [], got["left"]
    assert got["zombie"] is None


@needs_sandbox
@pytest.mark.skipif(os.geteuid() != 0 or not _can_nest_pid_namespace(False),
                    reason="needs root to make an outer PID namespace")
def test_code_judge_inside_a_pid_namespace_that_kept_the_hosts_proc() -> None:
    """`unshare --pid --fork` without --mount-proc: /proc numbers are another namespace's. Still right."""
    got = _judge_in_outer_namespace(mount_proc=False)
    assert got["pid"] == 1 and got["isolation"] is not None
    assert got["good"] == [True, "correct"]
    assert got["bad"] == [False, "wrong_answer"]
    assert got["spy"] in ("[1, 2]", "[1]")
    assert got["slow_timed_out"]
    assert got["zombie"] is None  # found without /proc: the killed sandbox was reaped, not orphaned to us


def test_without_a_sandbox_the_judge_refuses_instead_of_failing_the_code(tmp_path: Path) -> None:
    """No verdict for code that never ran: SandboxUnavailable, a UserError that says why and what to do."""
    code = textwrap.dedent("""
        import json
        from catalogs.errors import UserError
        from catalogs.records import Sample
        from judges.code import judge, judge_many
        s = Sample(answer="```python\\nprint(input())\\n```", tests=json.dumps([{"input": "7", "output": "7"}]))
        for call in (lambda: judge(s), lambda: judge_many([s, s], workers=2)):
            try:
                call()
                print("judged")
            except UserError as e:
                print(type(e).__name__, "|", e)
    """)
    env = {**os.environ, "PATH": str(tmp_path)}  # no bwrap, no unshare on PATH
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120,
                         cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        name, message = line.split(" | ", 1)
        assert name == "SandboxUnavailable"
        assert "bwrap: not installed" in message and "apt-get install bubblewrap" in message
        assert "nothing was judged" in message


def test_probe_rejects_a_tool_that_shows_host_processes() -> None:
    """`isolation_available` only trusts a tool whose probe sees no other process: run bare, it fails."""
    from judges.sandbox import _PROBE, SANDBOX_PYTHON, _probe

    if not os.path.exists(SANDBOX_PYTHON):
        pytest.skip("no system Python")
    assert _probe([SANDBOX_PYTHON, "-I", "-S", "-c", _PROBE]) == (
        "the sandboxed program could see processes outside its sandbox in /proc")
