"""The one progress display: a generation run (prompts, accepted, tokens/s, ETA) and judge or filter steps.

A rich bar on a terminal, log lines everywhere, a summary at the end.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from typing_extensions import Self

log = logging.getLogger("factory")


class RunProgress:
    """Prompts done, samples accepted, accept rate, tokens/s and ETA.

    On a terminal it draws a rich bar; otherwise it stays quiet on stdout and only logs (one line per
    update, at INFO on the `factory` logger), so runs under nohup or CI leave a readable trail.
    """

    def __init__(self, total_prompts: int, *, label: str = "generate", console: Console | None = None,
                 enabled: bool | None = None) -> None:
        self.total = total_prompts
        self.label = label
        self.console = console or Console()
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self.started = time.monotonic()
        self.session_tokens = 0
        self.done = 0
        self.accepted = 0
        self.generated = 0
        self._progress: Progress | None = None
        self._task: Any = None
        self._handler: logging.Handler | None = None

    def __enter__(self) -> Self:
        if not self.enabled and not log.hasHandlers():
            # Nobody configured logging: without a handler the progress lines would go nowhere.
            self._handler = logging.StreamHandler(sys.stderr)
            self._handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s"))
            log.addHandler(self._handler)
            if log.level == logging.NOTSET:
                log.setLevel(logging.INFO)
        if self.enabled:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TaskProgressColumn(),
                TextColumn("prompts {task.completed:.0f}/{task.total:.0f}"),
                TextColumn("{task.fields[stats]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task(self.label, total=max(self.total, 1), stats="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._handler is not None:
            log.removeHandler(self._handler)
            self._handler = None

    @property
    def tokens_per_s(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.session_tokens / elapsed if elapsed > 0 else 0.0

    def update(self, *, prompts_done: int, accepted: int, generated: int, new_tokens: int = 0,
               note: str = "") -> None:
        self.done, self.accepted, self.generated = prompts_done, accepted, generated
        self.session_tokens += new_tokens
        rate = accepted / generated if generated else 0.0
        stats = (f"accepted {accepted} | accept rate {rate:.0%} | {self.tokens_per_s:,.0f} tok/s"
                 + (f" | {note}" if note else ""))
        if self._progress is not None:
            self._progress.update(self._task, completed=prompts_done, stats=stats)
        elapsed = time.monotonic() - self.started
        eta = f"{elapsed / prompts_done * (self.total - prompts_done):.0f}s" if prompts_done else "?"
        log.info("%s: prompts %d/%d, %s, eta %s", self.label, prompts_done, self.total, stats, eta)

    def message(self, text: str) -> None:
        """A line users must see (resume hints, errors), on the terminal and in the log."""
        log.warning(text)
        if self.enabled:
            self.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)


def print_summary(summary: dict[str, Any], console: Console | None = None, enabled: bool | None = None) -> None:
    """A table at the end of a run (to the terminal), and one log line with the same figures."""
    keys = ["status", "run_id", "prompts", "solved", "unsolved", "open", "samples_generated", "samples_total",
            "accepted_total", "accept_rate", "tokens_generated", "tokens_per_s", "tokens_per_accepted",
            "elapsed_s"]
    log.info("summary: %s", ", ".join(f"{k}={summary.get(k)}" for k in keys if k in summary))
    enabled = sys.stdout.isatty() if enabled is None else enabled
    if not enabled:
        return
    console = console or Console()
    table = Table(title="generation summary")
    table.add_column("what")
    table.add_column("value", justify="right")
    for k in keys:
        if k in summary:
            v = summary[k]
            if isinstance(v, float):
                v = f"{v:.1%}" if k == "accept_rate" else f"{v:,.1f}"
            table.add_row(k.replace("_", " "), str(v))
    console.print(table)


class StageProgress:
    """Progress of a judge or filter recipe: a rich bar per step on a terminal, a line per step otherwise.

    Called as `progress(step_name, done, total)`.
    """

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bar: Progress | None = None
        self.tasks: dict[str, Any] = {}
        if self.console.is_terminal:
            from rich.progress import MofNCompleteColumn

            self.bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=self.console)

    def __enter__(self) -> Self:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, name: str, done: int, total: int) -> None:
        if self.bar is None:
            if done == 0 or done == total:
                self.console.print(f"{name}: {done}/{total}", highlight=False)
            return
        if name not in self.tasks:
            self.tasks[name] = self.bar.add_task(name, total=total)
        self.bar.update(self.tasks[name], completed=done, total=total)


class ByteProgress:
    """Progress through a file: bytes read, speed and ETA on a terminal. Called as `progress(done, total)`."""

    def __init__(self, label: str, total: int, console: Console | None = None) -> None:
        from rich.progress import DownloadColumn, TransferSpeedColumn

        self.bar = Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                            TransferSpeedColumn(), TimeRemainingColumn(), console=console or Console(stderr=True),
                            transient=True)
        self.task = self.bar.add_task(label, total=total)

    def __enter__(self) -> Self:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total)
