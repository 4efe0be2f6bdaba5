"""What a test's sandbox runs left behind, told apart from everything else on the machine.

Other tests and other people's jobs start and stop processes and fill disks at any moment, so machine-wide
counts say nothing about a sandbox. These helpers look only at what is this test's own:
- processes whose command line carries a marker that only this test's programs carry;
- processes of a sandbox uid that descend from this test process, with this process made the reaper of its
  descendants' orphans meanwhile, so a sandbox process that lost its parent comes here (even as a zombie)
  instead of going to the host's init, where it could not be told from anybody else's.
"""
from __future__ import annotations

import ctypes
import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from judges.sandbox import _UID_RANGE

_PR_SET_CHILD_SUBREAPER = 36


def processes_with(marker: str) -> dict[int, str]:
    """pid -> command line of each running process whose command line holds `marker` (a zombie has none)."""
    found = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid():
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                continue
            if marker in cmdline:
                found[int(d)] = cmdline
    return found


def _status(pid: str) -> tuple[int, int, str] | None:
    """(ppid, real uid, state) of a process, zombies included; None once it is gone."""
    fields = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key] = value.split()
        return int(fields["PPid"][0]), int(fields["Uid"][0]), fields["State"][0]
    except (OSError, KeyError, IndexError, ValueError):
        return None


def descendants(root: int | None = None) -> dict[int, tuple[int, str]]:
    """pid -> (real uid, state) of every descendant of `root` (this process by default), zombies included."""
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and (st := _status(d)) is not None:
            procs[int(d)] = st
    root = os.getpid() if root is None else root
    kids: dict[int, tuple[int, str]] = {}
    frontier = {root}
    while frontier:
        frontier = {p for p, (pp, _, _) in procs.items() if pp in frontier and p not in kids}
        kids.update({p: procs[p][1:] for p in frontier})
    return kids


def sandbox_descendants(before: Collection[int] = ()) -> dict[int, tuple[int, str]]:
    """This process's descendants that belong to a sandbox: as root, those running under a sandbox uid (every
    sandbox process below `setpriv`); otherwise (the sandbox keeps our uid) any descendant not in `before`."""
    if os.geteuid() == 0:
        return {p: v for p, v in descendants().items() if _UID_RANGE[0] <= v[0] < _UID_RANGE[1]}
    return {p: v for p, v in descendants().items() if p not in before}


@contextmanager
def reaper() -> Iterator[None]:
    """Make this process the reaper of its descendants' orphans while the block runs (a child subreaper)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    try:
        yield
    finally:
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
