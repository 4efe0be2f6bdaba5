"""The `r1f` entry point: the read commands and `r1f --help` without typer, everything else through the typer app.

`r1f show`, `sql` and `stats` are parsed by `catalogs.readcli.parse` and run by the same functions the typer
commands call, so they start with no more than DuckDB (and rich, for a table). An argument list the parser does
not take exactly as typer would goes to typer (`r1f.cli`), which answers it as always.

`r1f --help` is typer's own text, cached: the first call renders it with typer and stores what it printed; a
later call prints the stored text while nothing that could change it has changed: the source files of every
module typer's rendering loaded (our commands, typer, rich), the interpreter, the program name, the
environment, and which standard streams are terminals, and how wide.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

READ_COMMANDS = ("show", "sql", "stats")
# Variables a shell changes from one command to the next, which neither typer nor rich reads.
VOLATILE_ENV = ("_", "OLDPWD", "PWD", "SHLVL")


def main() -> None:
    args = sys.argv[1:]
    if args == ["--help"]:
        text = _cached_help()
        if text is None:
            _render_help_and_cache()
        else:
            _run(lambda: _print(text))
        return
    if args and args[0] in READ_COMMANDS:
        from catalogs.readcli import parse

        parsed = parse(args)
        if parsed is not None:
            function, params = parsed
            _run(lambda: function(**params))
            return
    from r1f.cli import main as typer_main

    typer_main()


def _run(command: Callable[[], None]) -> None:
    """Run a read command (or print the cached help) and end as `r1f.cli.main` and typer would: a `UserError`
    prints one line and exits 2;
    Ctrl-C exits 130; a closed stdout (`r1f sql ... | head`) exits 1 quietly; anything else is a bug and keeps
    its traceback."""
    from catalogs.errors import UserError

    try:
        command()
    except KeyboardInterrupt:
        sys.exit(130)
    except UserError as exc:
        from catalogs.clibase import print_user_error

        print_user_error(exc)
        sys.exit(2)
    except OSError as exc:
        import errno

        if exc.errno != errno.EPIPE:
            raise
        # typer's own wrapper: its flush at exit ignores the broken pipe, as under typer. Loaded only here.
        from typer._click.utils import PacifyFlushWrapper

        sys.stdout = PacifyFlushWrapper(sys.stdout)
        sys.stderr = PacifyFlushWrapper(sys.stderr)
        sys.exit(1)


# ---------------------------------------------------------------------------------------------- --help
def _help_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "r1f" / "help.json"


def _help_key() -> str:
    """Everything besides source files that typer's help text depends on (or might), hashed: the cache keeps
    no environment variable's value."""
    import hashlib
    import json

    main_module = sys.modules.get("__main__")
    streams = []
    for fd in (0, 1, 2):
        try:
            streams.append([os.isatty(fd), tuple(os.get_terminal_size(fd))])
        except OSError:
            streams.append([False, None])
    state = {
        "argv0": sys.argv[0], "main": getattr(main_module, "__package__", None), "python": sys.executable,
        "version": sys.version, "path": sys.path, "streams": streams,
        "encodings": [getattr(s, "encoding", None) for s in (sys.stdout, sys.stderr)],
        "env": sorted((k, v) for k, v in os.environ.items() if k not in VOLATILE_ENV),
    }
    return hashlib.sha256(json.dumps(state, default=str).encode()).hexdigest()


def _stamp(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_mtime_ns, st.st_size]


def _cached_help() -> str | None:
    """The stored help text if it is still what typer would print; None if there is none or it is stale."""
    import json

    try:
        cached = json.loads(_help_cache().read_text(encoding="utf-8"))
        if cached["key"] != _help_key() or any(_stamp(path) != stamp for path, stamp in cached["files"]):
            return None
        return str(cached["stdout"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()  # here, so that a closed pipe ends as under typer (see _run), not at exit


class _Tee:
    """A standard stream that also keeps what is written to it; everything else (isatty, fileno, encoding)
    is the stream's own, so typer and rich render exactly as they would without it."""

    def __init__(self, stream: TextIO) -> None:
        import io

        self.stream, self.kept = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.kept.write(text)
        return self.stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def _render_help_and_cache() -> None:
    """`r1f --help` through typer; what it printed is stored for the next call, if it succeeded and printed
    nothing on stderr."""
    key = _help_key()
    out, err = _Tee(sys.stdout), _Tee(sys.stderr)
    sys.stdout, sys.stderr = out, err
    succeeded = False
    try:
        from r1f.cli import main as typer_main

        typer_main()
        succeeded = True
    except SystemExit as exc:
        succeeded = exc.code in (0, None)
        raise
    finally:
        sys.stdout, sys.stderr = out.stream, err.stream
        if succeeded and not err.kept.getvalue():
            files = {getattr(m, "__file__", None) for m in list(sys.modules.values())}
            _store_help(key, out.kept.getvalue(), sorted(f for f in files if isinstance(f, str)))


def _store_help(key: str, text: str, files: list[str]) -> None:
    import contextlib
    import json

    path = _help_cache()
    entry = {"key": key, "files": [[f, _stamp(f)] for f in files], "stdout": text}
    with contextlib.suppress(OSError):  # no cache (a read-only home) costs speed, nothing else
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(entry), encoding="utf-8")
        os.replace(tmp, path)
