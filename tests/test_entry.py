"""The `r1f` entry point (r1f/entry.py) answers exactly as the typer app does: `show`, `sql` and `stats` run
without typer, `--help` comes from a cache of typer's own text. Each case runs twice, through an `r1f` script
that calls the entry point and one that calls typer (`r1f.cli:main`), and the two must print the same bytes on
stdout and stderr and exit with the same code."""
from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from review.decisions import Decision, apply
from tests.catalogs.test_roundtrip import build

ROOT = Path(__file__).resolve().parents[1]


def test_the_r1f_script_is_the_entry_point() -> None:
    assert 'r1f = "r1f.entry:main"' in (ROOT / "pyproject.toml").read_text()
    assert "from r1f.entry import main" in (ROOT / "r1f" / "__main__.py").read_text()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A catalog with prompts, generations, verdicts, filter decisions, a release and a human edit; and two `r1f`
    scripts, one per path."""
    from catalogs.query import sql
    from releases.release import create_release

    tmp = tmp_path_factory.mktemp("entry")
    cat, run_id = build(tmp)
    create_release(cat, "v1")
    gid, pid = sql(cat, "SELECT generation_id, prompt_id FROM release_members ORDER BY 1 LIMIT 1")[1][0]
    apply(cat, [Decision(generation_id=gid, reviewer="ann", decision="edit", reasoning="Shorter.",
                         answer="\\boxed{7}")])
    edit = sql(cat, f"SELECT generation_id FROM generation_meta WHERE parent_id = '{gid}'")[1][0][0]
    scripts = {}
    for name, module in (("lean", "r1f.entry"), ("typer", "r1f.cli")):
        script = tmp / name / "r1f"  # named as the installed script, so both print `Usage: r1f ...`
        script.parent.mkdir()
        script.write_text(f"import sys\nfrom {module} import main\nsys.exit(main())\n")
        scripts[name] = script
    return {"cat": cat.root, "gid": gid, "pid": pid, "run": run_id, "edit": edit, "scripts": scripts, "tmp": tmp}


def _run(world: dict[str, object], which: str, args: list[str], **env: str) -> tuple[int, str, str]:
    scripts = world["scripts"]
    assert isinstance(scripts, dict)
    full_env = {**os.environ, "COLUMNS": "100", "XDG_CACHE_HOME": str(Path(str(world["tmp"])) / "cache"), **env}
    full_env.pop("R1F_CATALOG", None)
    proc = subprocess.run([sys.executable, str(scripts[which]), *args], capture_output=True, text=True,
                          env=full_env, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


CASES = [
    ["show", "{gid}"], ["show", "{gid}", "--json"], ["show", "{gid}", "--full"], ["show", "{edit}"],
    ["show", "{edit}", "--json", "--full"], ["show", "{pid}"], ["show", "{pid}", "--json"], ["show", "{run}"],
    ["show", "v1"], ["show", "v1", "--json"], ["show", "g_000000000000000000000000"], ["show", "nothing"],
    ["show", "s_123"],
    ["sql", "SELECT kind, count(*) AS n FROM prompts GROUP BY 1"],
    ["sql", "SELECT generation_id, reasoning FROM generations ORDER BY 1", "--limit", "3"],
    ["sql", "SELECT * FROM verdicts ORDER BY ALL", "--csv"], ["sql", "SELECT * FROM runs", "--json"],
    ["sql", "SELECT * FROM prompts ORDER BY prompt_id", "--limit", "0"], ["sql", "DROP TABLE prompts"],
    ["sql", "SELEC 1"], ["sql", "SELECT 1; SELECT 2"], ["sql", "SELECT nope FROM prompts"],
    ["stats"], ["stats", "--json"], ["stats", "--cost"], ["stats", "--cost", "--json"],
    # typer's answers, through the entry point's fallback
    ["show"], ["show", "--help"], ["sql", "SELECT 1", "--limit", "x"], ["stats", "--bogus"],
]


@pytest.mark.parametrize("colour", [False, True], ids=["plain", "FORCE_COLOR"])
@pytest.mark.parametrize("case", CASES, ids=[" ".join(c)[:40] for c in CASES])
def test_entry_point_answers_as_typer_does(world: dict[str, object], case: list[str], colour: bool) -> None:
    args = [a.format(**{k: str(v) for k, v in world.items()}) for a in case] + ["--catalog", str(world["cat"])]
    env = {"FORCE_COLOR": "1"} if colour else {}
    lean, typer_ = _run(world, "lean", args, **env), _run(world, "typer", args, **env)
    assert lean == typer_
    if args[0] == "show" and len(args) > 1 and args[1] == str(world["gid"]) and "--json" not in args:
        for needle in ("math_accuracy", "language_mixing", "v1", "edited"):  # the case shows what it should
            assert needle in lean[1], needle


def test_a_catalog_that_is_not_there(world: dict[str, object], tmp_path: Path) -> None:
    args = ["stats", "--catalog", str(tmp_path / "none")]
    lean = _run(world, "lean", args)
    assert lean == _run(world, "typer", args) and lean[0] == 2 and "no catalog at" in lean[2]
    args = ["show", "g_1"]
    env = {"R1F_CATALOG": str(tmp_path / "none")}
    assert _run(world, "lean", args, **env) == _run(world, "typer", args, **env)


def test_a_terminal_gets_the_same_tables(world: dict[str, object]) -> None:
    """With stdout on a terminal, rich colours and highlights: the same bytes on both paths."""
    outputs = []
    for which in ("lean", "typer"):
        scripts = world["scripts"]
        assert isinstance(scripts, dict)
        leader, follower = pty.openpty()
        env = {**os.environ, "COLUMNS": "100", "TERM": "xterm-256color"}
        env.pop("NO_COLOR", None)
        proc = subprocess.Popen([sys.executable, str(scripts[which]), "show", str(world["gid"]), "--catalog",
                                 str(world["cat"])], stdout=follower, stderr=subprocess.PIPE, env=env)
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal closes when the process ends
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(leader)
        assert proc.wait(timeout=120) == 0
        outputs.append(b"".join(chunks))
    assert b"\x1b[1;36m" in outputs[0]  # coloured, numbers highlighted
    assert outputs[0] == outputs[1]


def test_without_colours_highlighting_changes_no_byte(world: dict[str, object]) -> None:
    """The consoles skip highlighting where there are no colours (catalogs/clibase.py): it would style text that
    prints plain. Checked on what `show` and `stats` print."""
    import io

    from rich.console import Console

    from catalogs.clibase import open_catalog, table
    from catalogs.query import show, stats
    from catalogs.readcli import render_show

    cat = open_catalog(Path(str(world["cat"])))
    for gid in (str(world["gid"]), str(world["edit"]), str(world["pid"])):
        printed = []
        for highlight in (True, False):
            console = Console(file=io.StringIO(), width=90, highlight=highlight)
            assert console.color_system is None
            render_show(show(cat, gid), console)
            console.print(table("judges", stats(cat)["judges"]))
            printed.append(console.file.getvalue())  # type: ignore[attr-defined]
        assert printed[0] == printed[1] and "math_accuracy" in printed[0]


def test_a_closed_pipe_ends_quietly_as_under_typer(world: dict[str, object]) -> None:
    """`r1f sql ... --csv | head -1`: exit 1 and nothing on stderr, as typer does."""
    results = []
    for which in ("lean", "typer"):
        scripts = world["scripts"]
        assert isinstance(scripts, dict)
        proc = subprocess.Popen([sys.executable, str(scripts[which]), "sql", "SELECT range FROM range(300000)",
                                 "--csv", "--catalog", str(world["cat"])], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        assert proc.stdout is not None and proc.stderr is not None
        assert proc.stdout.read(6) == b"range\n"
        proc.stdout.close()
        results.append((proc.wait(timeout=120), proc.stderr.read()))
    assert results[0] == results[1] == (1, b"")


# ---------------------------------------------------------------------------------------------- --help
def test_help_is_typers_text_from_the_cache(world: dict[str, object]) -> None:
    cache = Path(str(world["tmp"])) / "cache" / "r1f" / "help.json"
    cache.unlink(missing_ok=True)
    typer_help = _run(world, "typer", ["--help"])
    assert typer_help[0] == 0 and "Usage: r1f [OPTIONS] COMMAND" in typer_help[1] and "show" in typer_help[1]
    assert _run(world, "lean", ["--help"]) == typer_help  # rendered by typer, and cached
    entry = json.loads(cache.read_text())
    assert entry["stdout"] == typer_help[1]
    assert any(f.endswith(os.path.join("catalogs", "cli.py")) for f, _ in entry["files"])  # our commands' source
    assert any(f.endswith(os.path.join("typer", "rich_utils.py")) for f, _ in entry["files"])  # and typer's
    assert _run(world, "lean", ["--help"]) == typer_help  # from the cache

    # The cache is what prints: a stored text comes back as stored...
    cache.write_text(json.dumps({**entry, "stdout": "CACHED\n"}))
    assert _run(world, "lean", ["--help"]) == (0, "CACHED\n", "")
    # ...until a source file it came from changes (here: its recorded size and time no longer match),
    files = [[f, [0, 0] if f.endswith(os.path.join("catalogs", "cli.py")) else stamp] for f, stamp in entry["files"]]
    cache.write_text(json.dumps({**entry, "files": files, "stdout": "STALE\n"}))
    assert _run(world, "lean", ["--help"]) == typer_help
    # ...or the terminal width, the environment or the program's name does.
    for env in ({"COLUMNS": "61"}, {"NO_COLOR": "1", "FORCE_COLOR": "1"}):
        cache.write_text(json.dumps({**entry, "stdout": "STALE\n"}))
        assert _run(world, "lean", ["--help"], **env) == _run(world, "typer", ["--help"], **env)
    assert _run(world, "lean", ["--help"], COLUMNS="61") == _run(world, "typer", ["--help"], COLUMNS="61")
    cache.write_text(json.dumps({**entry, "stdout": "STALE\n"}))
    proc = subprocess.run([sys.executable, "-m", "r1f", "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "100", "XDG_CACHE_HOME": str(cache.parents[1])})
    assert proc.returncode == 0 and "Usage: python -m r1f" in proc.stdout


def test_help_into_a_closed_pipe_ends_as_under_typer(world: dict[str, object]) -> None:
    """From the cache too: stdout is a pipe nobody reads any more."""
    scripts = world["scripts"]
    assert isinstance(scripts, dict)
    env = {**os.environ, "COLUMNS": "100", "XDG_CACHE_HOME": str(Path(str(world["tmp"])) / "cache")}
    assert _run(world, "lean", ["--help"])[0] == 0  # fills the cache
    results = []
    for which in ("lean", "typer"):
        read_end, write_end = os.pipe()
        os.close(read_end)
        proc = subprocess.run([sys.executable, str(scripts[which]), "--help"], stdout=write_end,
                              stderr=subprocess.PIPE, env=env, timeout=120)
        os.close(write_end)
        results.append((proc.returncode, proc.stderr))
    assert results[0] == results[1] and results[1][0] == 1


def test_help_without_a_writable_cache_still_prints(world: dict[str, object], tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    assert _run(world, "lean", ["--help"], XDG_CACHE_HOME=str(blocked)) == _run(world, "typer", ["--help"])
