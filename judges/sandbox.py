"""Run untrusted model-written Python in a sandbox.

Layers, outermost first:
- `prlimit`: CPU seconds, address space, processes, file size, open files, no core dumps.
- `setpriv` (when we are root): drop to a throwaway uid that owns nothing on the host, so
  RLIMIT_NPROC applies (root ignores it) and host files are only reachable through their
  "other" permission bits. Each run draws its own uid, so concurrent runs do not share a count.
- `unshare --pid --fork --mount-proc` (when we are root): an outer PID namespace whose init (bwrap)
  `unshare` itself reaps, with a /proc of that namespace, so bwrap sees its own processes under the
  numbers it knows them by (bwrap opens `/proc/<child>/ns/...`; with the judge's own /proc that is a
  stranger's process or none at all, e.g. when the judge runs inside a container's PID namespace).
- `bwrap`: fresh namespaces (no network; its own PID namespace with a fresh /proc, so the program sees
  only bwrap's init and itself, never a host process or its command line; every process dies with it),
  a read-only view of /usr only (no /root, /home, /etc, /work, /var), the program read-only in
  /code, a small private tmpfs as the only writable place, a clean environment.
  Fallback when bwrap is missing: `unshare` (network, PID, IPC, UTS namespaces) + the same rlimits
  and uid drop. It is weaker: the file system is the host's, so only permissions guard host files
  and world-writable folders (/tmp, /var/tmp) stay writable.
  With neither, code runs only if the caller passes `unsafe_local=True`.
  `isolation_available` proves a tool works by running a probe that must see no process but its own
  in /proc; a tool that runs but shows the host's processes does not count.
- Here: a wall-clock limit that kills the whole process group, and stdout/stderr capped at
  `output_bytes` (the process is killed once it prints more).
The host temp folder that holds the program is removed afterwards.
"""
from __future__ import annotations

import functools
import os
import random
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass

from catalogs.errors import UserError

SANDBOX_PYTHON = "/usr/bin/python3"  # the system interpreter, so only /usr has to be visible
_UID_RANGE = (2_000_000, 3_000_000)


class SandboxUnavailable(UserError, RuntimeError):
    """No isolation works here. Never a verdict: the program was not run, so it is neither right nor wrong."""


@dataclass(frozen=True)
class Limits:
    cpu_s: int = 5
    wall_s: float = 10.0
    memory_mb: int = 1024  # address space
    nproc: int = 32
    fsize_mb: int = 16
    nofile: int = 64
    output_bytes: int = 1 << 20
    tmp_mb: int = 32  # size of the writable tmpfs


@dataclass(frozen=True)
class RunResult:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    output_truncated: bool
    wall_s: float
    isolation: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.output_truncated

    @property
    def process_limit_hit(self) -> bool:
        """Whether the program was refused a new process or thread (EAGAIN under the `nproc` limit), as its
        stderr shows it. Read from what the program wrote, so it reports, it does not prove; a non-blocking
        read that found nothing raises the same BlockingIOError, rare in a sandbox without network."""
        return any(sign in self.stderr for sign in _PROCESS_LIMIT_SIGNS)


# How a refused fork or thread shows in stderr: Python's os.fork/subprocess (BlockingIOError, EAGAIN),
# Python's threading, and a shell's fork.
_PROCESS_LIMIT_SIGNS = ("BlockingIOError: [Errno 11]", "can't start new thread",
                        "fork: Resource temporarily unavailable",
                        "fork: retry: Resource temporarily unavailable")


# The probe passes only if the sandbox sees its own processes and nothing else: bwrap's init and
# itself (bwrap), or itself (unshare). Exit 3 means it ran but saw other processes.
_PROBE = ("import os, sys\n"
          "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
          "sys.exit(0 if len(pids) <= 2 else 3)\n")


def _probe(cmd: list[str]) -> str | None:
    """None if `cmd` ran the probe and it passed; else why not, in a few words."""
    try:
        out = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             timeout=20, env={}, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{cmd[0]} did not run ({exc})"
    if out.returncode == 0:
        return None
    if out.returncode == 3:
        return "the sandboxed program could see processes outside its sandbox in /proc"
    err = out.stderr.decode("utf-8", "replace").strip().splitlines()
    return f"exit {out.returncode}" + (f": {err[-1][:200]}" if err else "")


@functools.cache
def _find_isolation() -> tuple[str | None, str]:
    """(the first isolation tool that works, or None; why each tool before it did not)."""
    if not os.path.exists(SANDBOX_PYTHON):
        return None, f"{SANDBOX_PYTHON} is missing (the sandbox runs the system Python)"
    drop = _drop_privileges(_UID_RANGE[0])
    probe = [SANDBOX_PYTHON, "-I", "-S", "-c", _PROBE]
    problems = []
    for tool, cmd in (("bwrap", lambda: _pid_ns() + drop + _bwrap_args("/", 64)),
                      ("unshare", lambda: _unshare_args() + drop)):
        if not shutil.which(tool):
            problems.append(f"{tool}: not installed ("
                            + ("apt-get install bubblewrap" if tool == "bwrap" else "util-linux") + ")")
            continue
        why = _probe(cmd() + probe)
        if why is None:
            return tool, "; ".join(problems)
        problems.append(f"{tool}: {why}")
    return None, "; ".join(problems)


def isolation_available() -> str | None:
    """'bwrap', 'unshare' or None: which isolation tool actually works on this machine."""
    return _find_isolation()[0]


def isolation_problem() -> str:
    """Why `isolation_available()` is None (or why the tools before the one it chose failed), tool by tool."""
    return _find_isolation()[1]


def _proc_is_ours() -> bool:
    """Whether /proc shows our own PID namespace (false under `unshare --pid --fork` without --mount-proc)."""
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


def _drop_privileges(uid: int) -> list[str]:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return []
    return ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]


def _bwrap_args(code_dir: str, tmp_mb: int) -> list[str]:
    args = ["bwrap", "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "lib", "lib64", "sbin"):
        path = "/" + name
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    args += ["--ro-bind", code_dir, "/code", "--dev", "/dev", "--proc", "/proc",
             "--size", str(tmp_mb << 20), "--tmpfs", "/tmp", "--chdir", "/tmp",
             # bwrap's own PID namespace too, nested in `unshare`'s when we are root: without it bwrap
             # bind-mounts the /proc it finds, and the program could read every host command line.
             "--unshare-user", "--unshare-ipc", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
             "--unshare-pid",
             "--die-with-parent", "--new-session", "--clearenv",
             "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", "/tmp",
             "--setenv", "LANG", "C.UTF-8", "--setenv", "PYTHONIOENCODING", "utf-8", "--"]
    return args


def _pid_ns() -> list[str]:
    """A PID namespace whose init (bwrap) is `unshare`'s child, reaped by `unshare` itself.

    bwrap's own `--unshare-pid` exits its monitor before reaping the namespace's init, which then
    lingers as a zombie of whatever reaps orphans (the judge itself, when it is a container's PID 1);
    with `unshare --fork --pid`, the init (bwrap) exits only after the kernel has killed and reaped
    everything in the namespace, and `unshare` reaps it. `--mount-proc` gives bwrap a /proc of that
    namespace: bwrap looks up its child as `/proc/<pid>/ns/...` by the pid it knows.
    Needs root; unprivileged callers rely on bwrap's own PID namespace alone.
    """
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return []
    return ["unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--"]


def _unshare_args() -> list[str]:
    # Needs root (or user namespaces) for net/pid/mount namespaces; --kill-child takes the tree down.
    return ["unshare", "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--ipc", "--uts", "--"]


def _own_process_count() -> int:
    uid, n = os.getuid(), 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                n += os.stat(f"/proc/{d}").st_uid == uid
            except OSError:
                pass
    return n


def _prlimit_args(limits: Limits) -> list[str]:
    # RLIMIT_NPROC counts every process of the real uid. As root we run under a fresh uid that owns
    # nothing else; otherwise the caller's own processes count too, so the budget sits on top of them.
    nproc = limits.nproc if os.geteuid() == 0 else limits.nproc + _own_process_count()
    return ["prlimit", f"--cpu={limits.cpu_s}", f"--as={limits.memory_mb << 20}", f"--nproc={nproc}",
            f"--fsize={limits.fsize_mb << 20}", f"--nofile={limits.nofile}", "--core=0", "--"]


def run_python(code: str, stdin: str = "", limits: Limits = Limits(), *, unsafe_local: bool = False,
               isolation: str | None = None) -> RunResult:
    """Run `code` as a Python program with `stdin`; never raises for anything the program does."""
    iso = isolation or isolation_available()
    if iso is None:
        if not unsafe_local:
            raise SandboxUnavailable(f"no working isolation ({isolation_problem()}); refusing to run model code. "
                                     "Install bubblewrap, or pass unsafe_local=True to run it unsandboxed.")
        iso = "unsafe_local"
    host_dir = tempfile.mkdtemp(prefix="r1f-sbx-")
    try:
        os.chmod(host_dir, 0o755)
        with open(os.path.join(host_dir, "main.py"), "w", encoding="utf-8") as f:
            f.write(code)
        with open(os.path.join(host_dir, "stdin"), "w", encoding="utf-8") as f:
            f.write(stdin)
        for name in ("main.py", "stdin"):
            os.chmod(os.path.join(host_dir, name), 0o644)
        uid = random.randrange(*_UID_RANGE)
        if iso == "bwrap":
            cmd = (_prlimit_args(limits) + _pid_ns() + _drop_privileges(uid) + _bwrap_args(host_dir, limits.tmp_mb)
                   + [SANDBOX_PYTHON, "-I", "-S", "/code/main.py"])
            cwd, env = "/", {}
        elif iso == "unshare":
            work = os.path.join(host_dir, "work")
            os.mkdir(work)
            if os.geteuid() == 0:
                os.chown(work, uid, uid)
            cmd = (_prlimit_args(limits) + _unshare_args() + _drop_privileges(uid)
                   + [SANDBOX_PYTHON, "-I", "-S", os.path.join(host_dir, "main.py")])
            cwd, env = work, {"PATH": "/usr/bin:/bin", "HOME": work, "LANG": "C.UTF-8"}
        elif iso == "unsafe_local":
            work = os.path.join(host_dir, "work")
            os.mkdir(work)
            cmd = _prlimit_args(limits) + [SANDBOX_PYTHON, "-I", "-S", os.path.join(host_dir, "main.py")]
            cwd, env = work, {"PATH": "/usr/bin:/bin", "HOME": work, "LANG": "C.UTF-8"}
        elif iso == "none":  # benchmarks only: the bare-subprocess baseline
            cmd = [SANDBOX_PYTHON, "-I", "-S", os.path.join(host_dir, "main.py")]
            cwd, env = host_dir, {"PATH": "/usr/bin:/bin"}
        else:
            raise ValueError(f"unknown isolation {iso!r}")
        return _supervise(cmd, os.path.join(host_dir, "stdin"), cwd, env, limits, iso)
    finally:
        shutil.rmtree(host_dir, ignore_errors=True)


def _supervise(cmd: list[str], stdin_path: str, cwd: str, env: dict[str, str], limits: Limits,
               iso: str) -> RunResult:
    start = time.monotonic()
    with open(stdin_path, "rb") as stdin_f:
        proc = subprocess.Popen(cmd, stdin=stdin_f, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
                                env=env, start_new_session=True, close_fds=True)
    out, err = bytearray(), bytearray()
    timed_out = truncated = False
    sel = selectors.DefaultSelector()
    assert proc.stdout is not None and proc.stderr is not None
    sel.register(proc.stdout, selectors.EVENT_READ, out)
    sel.register(proc.stderr, selectors.EVENT_READ, err)
    try:
        open_streams = 2
        while open_streams:
            left = limits.wall_s - (time.monotonic() - start)
            if left <= 0:
                timed_out = True
                break
            for key, _ in sel.select(timeout=min(left, 0.5)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                buf: bytearray = key.data
                room = limits.output_bytes - len(out) - len(err)
                buf += chunk[:max(room, 0)]
                if len(chunk) > room:
                    truncated = True
            if truncated:
                break
        if not timed_out and not truncated:
            try:
                proc.wait(timeout=max(0.1, limits.wall_s - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                timed_out = True
    finally:
        _kill_group(proc)
        sel.close()
        proc.stdout.close()
        proc.stderr.close()
    return RunResult(returncode=None if (timed_out or truncated) else proc.returncode,
                     stdout=out.decode("utf-8", "replace"), stderr=err.decode("utf-8", "replace"),
                     timed_out=timed_out, output_truncated=truncated, wall_s=time.monotonic() - start,
                     isolation=iso)


def _children(pid: int) -> list[str]:
    """The pids of `pid`'s children, as this process numbers them."""
    path = f"/proc/{pid}/task/{pid}/children"
    if _proc_is_ours():
        try:
            with open(path) as f:
                return f.read().split()
        except OSError:
            return []
    # /proc belongs to another PID namespace (e.g. `unshare --pid --fork` without --mount-proc): its
    # numbers are other processes'. A helper in a mount namespace of its own mounts a /proc of ours.
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return []
    try:
        out = subprocess.run(["unshare", "--mount", "--mount-proc", "--", "cat", path], capture_output=True,
                             text=True, timeout=10, env={"PATH": "/usr/bin:/bin"}, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return out.stdout.split() if out.returncode == 0 else []


def _kill_group(proc: subprocess.Popen) -> None:
    # Kill the namespace's init first so `unshare` (our child) reaps it and then exits itself;
    # killing `unshare` first would orphan the init as a zombie of whatever reaps orphans: the host's
    # init, or the judge itself when it is a container's PID 1.
    if proc.poll() is None:
        for kid in _children(proc.pid):
            try:
                os.kill(int(kid), signal.SIGKILL)
            except (ProcessLookupError, PermissionError, ValueError):
                pass
        try:
            proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
