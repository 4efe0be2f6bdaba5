"""Hostile programs: each one is contained, gets a failed verdict, and leaves nothing behind.

Every program prints the marker in its test's expected output only if its attack worked, so a
passed verdict would mean the sandbox let it through.

"Nothing behind" is checked on what is this module's own, never on machine-wide counts (other tests and
other jobs come and go): the planted files and their folders, the folder the sandbox gets its temp
folders in (made private to this module), processes whose command line carries MARKER (every hostile
program re-executes itself with it first, so each of its processes carries it), and sandbox processes
among this test process's descendants, with this process the reaper of their orphans meanwhile.
The wall limit is generous except for programs that never end: whether a program that has to finish
does so never depends on how loaded the machine is.
"""
import dataclasses
import hashlib
import json
import os
import shutil
import socket
import tempfile
import textwrap
from pathlib import Path

import pytest

from catalogs.records import Sample
from judges.code import judge, judge_many
from judges.sandbox import Limits, isolation_available, run_python
from tests.judges.leftovers import processes_with, reaper, sandbox_descendants

pytestmark = pytest.mark.skipif(isolation_available() is None, reason="no bwrap/unshare on this machine")

# The wall limit is generous: a program that has to finish gets its time however loaded the machine is.
LIMITS = Limits(cpu_s=1, wall_s=20.0, memory_mb=512, nproc=16, fsize_mb=4, nofile=32, output_bytes=64 << 10,
                tmp_mb=8)
# For programs that never end by themselves: they time out whatever the load, so the limit can be short.
NEVER_ENDS = dataclasses.replace(LIMITS, wall_s=2.0)
SECRET = "r1f-secret-" + hashlib.sha256(os.urandom(16)).hexdigest()[:16]
MARKER = "r1f-hostile-" + hashlib.sha256(os.urandom(16)).hexdigest()[:16]


def _digest(files: list[Path]) -> dict[str, str]:
    return {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="module")
def planted():
    """Planted secrets outside the sandbox (world-readable, so only isolation protects them), secrets in
    our environment, and a private folder for the sandbox's temp folders."""
    dirs = [Path(tempfile.mkdtemp(prefix="r1f-hostile-", dir=base)) for base in ("/var/tmp", os.path.expanduser("~"))]
    files = []
    for d in dirs:
        os.chmod(d, 0o755)
        f = d / "secret.txt"
        f.write_text(SECRET)
        os.chmod(f, 0o644)
        files.append(f)
    sandbox_temp = Path(tempfile.mkdtemp(prefix="r1f-hostile-sbx-"))
    os.chmod(sandbox_temp, 0o755)  # the sandbox uid reaches the program's folder through it
    old_tempdir, tempfile.tempdir = tempfile.tempdir, str(sandbox_temp)
    old_env = {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "HF_TOKEN")}
    os.environ["OPENAI_API_KEY"] = "sk-" + SECRET
    os.environ["HF_TOKEN"] = "hf_" + SECRET
    try:
        yield {"files": files, "dirs": dirs, "sandbox_temp": sandbox_temp, "hashes": _digest(files),
               "listing": {str(d): sorted(os.listdir(d)) for d in dirs}}
    finally:
        tempfile.tempdir = old_tempdir
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        for d in [*dirs, sandbox_temp]:
            shutil.rmtree(d)


@pytest.fixture
def host(planted):
    """After each test, what its sandboxes left: nothing, and the planted files as they were."""
    with reaper():
        yield planted
        assert processes_with(MARKER) == {}  # no process of a hostile program survives, wherever it went
        # nor a sandbox tool of ours (prlimit, unshare, bwrap: their command lines name the program's folder)
        assert processes_with(str(planted["sandbox_temp"])) == {}
        assert sandbox_descendants() == {}  # nor any sandbox process of ours, not even a zombie
    assert _digest(planted["files"]) == planted["hashes"]
    assert {str(d): sorted(os.listdir(d)) for d in planted["dirs"]} == planted["listing"]
    assert os.listdir(planted["sandbox_temp"]) == []  # each run removed its own temp folder


def _tagged(program: str) -> str:
    """The program, re-executing itself first with MARKER in its command line (its children inherit it)."""
    return (f"import os as _os, sys as _sys\n"
            f"if {MARKER!r} not in _sys.argv:\n"
            f"    _os.execv(_sys.executable, [_sys.executable, '-I', '-S', _sys.argv[0], {MARKER!r}])\n"
            + textwrap.dedent(program))


def _sample(program: str, marker: str = "PWNED") -> Sample:
    return Sample(answer="```python\n" + _tagged(program) + "\n```",
                  tests=json.dumps([{"input": "", "output": marker}]))


def _contained(program: str, marker: str = "PWNED", limits: Limits = LIMITS):
    v = judge(_sample(program, marker), limits=limits)
    assert not v.passed and v.score == 0.0, v
    return v


def test_control_benign_program_passes(host):
    assert judge(_sample("print('PWNED')"), limits=LIMITS).passed  # the marker check itself works


def test_read_secret_outside_sandbox(host):
    paths = [str(f) for f in host["files"]]
    _contained(f"""
        out = []
        for p in {paths!r}:
            try:
                out.append(open(p).read())
            except Exception as e:
                pass
        print(''.join(out) if out else 'nothing')
    """, marker=SECRET)
    res = run_python(f"print(open({paths[0]!r}).read())", limits=LIMITS)
    assert SECRET not in res.stdout and res.returncode != 0


def test_write_outside_temp_folder(host):
    target = host["dirs"][0] / "pwned.txt"
    _contained(f"""
        import os
        ok = False
        for p in [{str(target)!r}, '/usr/r1f_pwned', '/code/main.py', '/r1f_pwned', '/var/tmp/r1f_pwned']:
            try:
                with open(p, 'w') as f:
                    f.write('x')
                ok = True
                print('wrote', p)
            except Exception:
                pass
        print('PWNED' if ok else 'safe')
    """)
    assert not target.exists() and not Path("/usr/r1f_pwned").exists() and not Path("/var/tmp/r1f_pwned").exists()


def test_network_connection_to_loopback_listener(host):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.setblocking(False)
    port = srv.getsockname()[1]
    try:
        _contained(f"""
            import socket
            s = socket.create_connection(('127.0.0.1', {port}), timeout=1)
            s.sendall(b'hello')
            print('PWNED')
        """)
        with pytest.raises(BlockingIOError):
            srv.accept()
    finally:
        srv.close()


def test_fork_bomb(host):
    v = _contained("""
        import os
        while True:
            os.fork()
    """)
    # It ran into the process limit (a refused fork kills the process that asked, with EAGAIN on stderr)...
    failure = v.details["failures"][0]
    assert failure["process_limit"] and failure["returncode"] != 0, failure
    # ...and nothing of it is left running.
    assert processes_with(MARKER) == {}


def test_allocate_100_gb(host):
    _contained("""
        x = bytearray(100 * 1024 ** 3)
        print('PWNED')
    """)


def test_infinite_loop(host):
    v = _contained("while True:\n    pass")
    assert v.details["failures"][0]["returncode"] != 0 or v.details["failures"][0]["timed_out"]


def test_print_gigabytes(host):
    v = _contained("""
        import sys
        chunk = 'x' * 65536
        for _ in range(16 * 1024 * 32):
            sys.stdout.write(chunk)
        print('PWNED')
    """)
    assert v.details["failures"][0]["output_truncated"]


def test_sleep_past_wall_limit(host):
    v = _contained("import time\ntime.sleep(3600)\nprint('PWNED')", limits=NEVER_ENDS)
    assert v.reason == "timeout"


def test_kill_parent(host):
    # PWNED only if the parent (or anything else visible) really died.
    _contained("""
        import os, time
        ppid = os.getppid()
        victims = [ppid] + [int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]
        for pid in victims:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
        time.sleep(0.2)
        try:
            os.kill(ppid, 0)
            print('parent alive')
        except OSError:
            print('PWNED')
    """)
    assert sandbox_descendants() == {} and processes_with(MARKER) == {}


def test_background_process_left_behind(host):
    # The grandchild, in a session of its own, says it runs before the program ends: it surely outlives it.
    _contained("""
        import os, time
        r, w = os.pipe()
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.write(w, b"up")
                time.sleep(3600)
            os._exit(0)
        os.close(w)
        assert os.read(r, 2) == b"up"
        print('started')
    """)
    assert processes_with(MARKER) == {}


def test_environment_has_no_api_keys(host):
    assert os.environ["OPENAI_API_KEY"].endswith(SECRET)
    _contained("""
        import os
        print(os.environ.get('OPENAI_API_KEY', '') + os.environ.get('HF_TOKEN', ''))
    """, marker="sk-" + SECRET + "hf_" + SECRET)
    res = run_python("import os; print(dict(os.environ))", limits=LIMITS)
    assert res.returncode == 0 and SECRET not in res.stdout and "OPENAI_API_KEY" not in res.stdout


def test_hostile_batch_in_parallel(host):
    # Each ends by a limit that does not wait on the clock (CPU, output, memory): a sleeper would hold the batch
    # for the whole wall limit (`test_sleep_past_wall_limit` has it).
    progs = ["while True: pass", "import sys\nwhile True: sys.stdout.write('x' * 65536)", "print('PWNED')",
             "x = bytearray(10**11)"]
    got = judge_many([_sample(p) for p in progs], workers=2, limits=LIMITS)
    assert [v.passed for v in got] == [False, False, True, False]
