"""Hostile programs: each one is contained, gets a failed verdict, and leaves the host as it was.

Every program prints the marker in its test's expected output only if its attack worked, so a
passed verdict would mean the sandbox let it through.
"""
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
from judges.sandbox import _UID_RANGE, Limits, isolation_available, run_python

pytestmark = pytest.mark.skipif(isolation_available() is None, reason="no bwrap/unshare on this machine")

LIMITS = Limits(cpu_s=1, wall_s=3.0, memory_mb=512, nproc=16, fsize_mb=4, nofile=32, output_bytes=64 << 10,
                tmp_mb=8)
SECRET = "r1f-secret-" + hashlib.sha256(os.urandom(16)).hexdigest()[:16]


def _procs() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, uid) for every process we can see."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                uid = int(next(line for line in Path(f"/proc/{d}/status").read_text().splitlines()
                               if line.startswith("Uid:")).split()[1])
                out[int(d)] = (ppid, uid)
            except (OSError, StopIteration, ValueError, IndexError):
                pass
    return out


def _descendants(procs, root):
    kids, frontier = set(), {root}
    while frontier:
        frontier = {p for p, (pp, _) in procs.items() if pp in frontier} - kids
        kids |= frontier
    return kids


def _leaked() -> list[int]:
    """Sandbox-uid processes that are ours or orphaned to the host's init. Another test run's live
    sandbox (parented by its own `unshare`) is neither, so concurrent runs do not trip this."""
    procs = _procs()
    mine = _descendants(procs, os.getpid())
    return [p for p, (pp, uid) in procs.items()
            if _UID_RANGE[0] <= uid < _UID_RANGE[1] and (pp == 1 or p in mine)]


@pytest.fixture(scope="module")
def host():
    """Planted secrets outside the sandbox (world-readable, so only isolation protects them)."""
    dirs = [Path(tempfile.mkdtemp(prefix="r1f-hostile-", dir=base)) for base in ("/var/tmp", os.path.expanduser("~"))]
    files = []
    for d in dirs:
        os.chmod(d, 0o755)
        f = d / "secret.txt"
        f.write_text(SECRET)
        os.chmod(f, 0o644)
        files.append(f)
    before = {"disk": shutil.disk_usage("/").free, "vartmp": shutil.disk_usage("/var/tmp").free,
              "procs": len(_procs()), "descendants": _descendants(_procs(), os.getpid()), "hashes": {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files},
              "listing": {str(d): sorted(os.listdir(d)) for d in dirs}}
    old_env = {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "HF_TOKEN")}
    os.environ["OPENAI_API_KEY"] = "sk-" + SECRET
    os.environ["HF_TOKEN"] = "hf_" + SECRET
    yield {"files": files, "dirs": dirs}
    for k, v in old_env.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    # The host is as it was: planted files intact, nothing new beside them, no leftover processes.
    assert {str(f): hashlib.sha256(f.read_bytes()).hexdigest() for f in files} == before["hashes"]
    assert {str(d): sorted(os.listdir(d)) for d in dirs} == before["listing"]
    procs = _procs()
    assert not _leaked()
    assert _descendants(procs, os.getpid()) <= before["descendants"]
    assert len(procs) < before["procs"] + 25  # other engineers' jobs come and go; a leak would be far more
    assert abs(shutil.disk_usage("/").free - before["disk"]) < 200 << 20
    assert abs(shutil.disk_usage("/var/tmp").free - before["vartmp"]) < 200 << 20
    for d in dirs:
        shutil.rmtree(d)


def _sample(program: str, marker: str = "PWNED") -> Sample:
    return Sample(answer="```python\n" + textwrap.dedent(program) + "\n```",
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
    _contained("""
        import os
        n = 0
        while True:
            try:
                os.fork()
                n += 1
            except OSError:
                pass
    """)


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
    v = _contained("import time\ntime.sleep(60)\nprint('PWNED')")
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
    assert not _leaked()


def test_background_process_left_behind(host):
    _contained("""
        import os, time
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            os._exit(0)
        time.sleep(0.1)
        print('started')
    """)
    assert not _leaked()


def test_environment_has_no_api_keys(host):
    assert os.environ["OPENAI_API_KEY"].endswith(SECRET)
    _contained("""
        import os
        print(os.environ.get('OPENAI_API_KEY', '') + os.environ.get('HF_TOKEN', ''))
    """, marker="sk-" + SECRET + "hf_" + SECRET)
    res = run_python("import os; print(dict(os.environ))", limits=LIMITS)
    assert res.returncode == 0 and SECRET not in res.stdout and "OPENAI_API_KEY" not in res.stdout


def test_hostile_batch_in_parallel(host):
    progs = ["while True: pass", "import time; time.sleep(60)", "print('PWNED')", "x = bytearray(10**11)"]
    got = judge_many([_sample(p) for p in progs], workers=2, limits=LIMITS)
    assert [v.passed for v in got] == [False, False, True, False]
