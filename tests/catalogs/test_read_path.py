"""The read commands import only what they use: no typer, torch, vLLM, transformers, polars, pyarrow or fastText
on the paths of `r1f --help` (from its cache), `show`, `sql` and `stats` (their speed is measured in
benchmarks/bench_show.py); and the entry point's own parser of their arguments agrees with typer's."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.catalogs.helpers import r1f, write_generations

HEAVY = ("typer", "click", "torch", "vllm", "transformers", "polars", "pyarrow", "fasttext", "datasets", "pandas",
         "pydantic")


def _imported(args: list[str], cwd: Path) -> set[str]:
    env = {**os.environ, "COLUMNS": "200", "XDG_CACHE_HOME": str(cwd / "cache")}
    for _ in range(2 if args == ["--help"] else 1):  # the first `--help` renders through typer and fills the cache
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "r1f", *args], capture_output=True,
                              text=True, cwd=cwd, env=env)
        assert proc.returncode == 0, proc.stderr[-2000:]
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "r1f" in names and "json" in names  # the parse sees the imports
    return names


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    tmp = tmp_path_factory.mktemp("read-path")
    write_generations(tmp / "gens.jsonl", n_prompts=3)
    r1f("ingest", str(tmp / "gens.jsonl"), "--generations", "--model", "m", "--source", "s",
        catalog=tmp / "cat")
    gid = r1f("sql", "SELECT generation_id FROM generation_meta LIMIT 1", "--csv",
              catalog=tmp / "cat").stdout.splitlines()[-1]
    return tmp / "cat", gid


@pytest.mark.parametrize("command", ["--help", "show", "sql", "stats"])
def test_read_commands_import_nothing_heavy(command: str, catalog: tuple[Path, str], tmp_path: Path) -> None:
    cat, gid = catalog
    args = {"--help": ["--help"], "show": ["show", gid, "--catalog", str(cat)],
            "sql": ["sql", "SELECT count(*) FROM verdicts", "--catalog", str(cat)],
            "stats": ["stats", "--catalog", str(cat)]}[command]
    heavy = sorted(_imported(args, tmp_path) & set(HEAVY))
    assert not heavy, f"`r1f {command}` imports {heavy}; import them inside the commands that need them"


def test_json_answers_load_no_rich(catalog: tuple[Path, str], tmp_path: Path) -> None:
    cat, gid = catalog
    for args in (["show", gid, "--json"], ["sql", "SELECT 1", "--json"], ["stats", "--json"]):
        assert "rich" not in _imported([*args, "--catalog", str(cat)], tmp_path), args


# ------------------------------------------------------------------------ the entry point's parser against typer's
ARGV = [
    ["show", "g_1"], ["show", "g_1", "--json"], ["show", "--full", "p_2", "-c", "cat"], ["show", "x", "--catalog", "c"],
    ["show", "r_3", "--lock-timeout", "2.5", "--json", "--full"], ["show", "rel", "--lock-timeout", "1e1"],
    ["show", "a b", "--lock-timeout", " 3 "], ["show", "g_1", "--lock-timeout", "nan"], ["show", ""],
    ["sql", "SELECT 1"], ["sql", "SELECT 1", "--limit", "0"], ["sql", "--csv", "SELECT 2", "--limit", "7"],
    ["sql", "SELECT 3", "--json", "-c", "there"], ["sql", "SELECT 1", "--limit", "1_000"],
    ["stats"], ["stats", "--json"], ["stats", "-c", "x", "--lock-timeout", "0"],
    # typer's to answer: help, errors, forms the entry point leaves to typer
    ["show"], ["show", "--help"], ["show", "a", "b"], ["show", "a", "--bogus"], ["show", "a", "--catalog"],
    ["show", "a", "--lock-timeout", "soon"], ["show", "a", "--full", "--full"], ["show", "--", "-a"],
    ["show", "a", "--catalog=x"], ["show", "a", "-cx"], ["show", "a", "--catalog", ""], ["sql"],
    ["sql", "SELECT 1", "--limit", "2.5"], ["sql", "SELECT 1", "--limit", "-1"], ["sql", "-q"],
    ["stats", "extra"], ["stats", "--full"], ["stats", "--json", "--json"], ["stats", "-c", "a", "-c", "b"],
    ["ingest", "f"], [],
]


def _typer_params(argv: list[str]) -> dict[str, object] | None:
    """What typer's parse of `r1f ARGV` gives the command, or None where typer answers with an error or help."""
    import typer

    from r1f.cli import app

    try:
        ctx = typer.main.get_group(app).commands[argv[0]].make_context(argv[0], argv[1:])
    except Exception as exc:  # typer's (vendored click's) usage errors, and the Exit of --help
        if type(exc).__module__.startswith("typer"):
            return None
        raise
    params = dict(ctx.params)
    params["catalog"] = typer.main.param_path_convertor(params["catalog"])  # as typer calls the command
    return params


@pytest.mark.parametrize("env_catalog", [None, "from-env", ""])
def test_the_entry_points_parser_agrees_with_typer(env_catalog: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    from catalogs.readcli import COMMANDS, parse

    if env_catalog is None:
        monkeypatch.delenv("R1F_CATALOG", raising=False)
    else:
        monkeypatch.setenv("R1F_CATALOG", env_catalog)
    taken = 0
    for argv in ARGV:
        ours = parse(argv)
        if ours is None:  # left to typer: always allowed
            continue
        function, params = ours
        assert function is COMMANDS[argv[0]].function, argv
        typer_params = _typer_params(argv)
        assert typer_params is not None, argv
        # values and types (Path, float, int); repr, as nan != nan
        assert repr(sorted(params.items())) == repr(sorted(typer_params.items())), argv
        taken += 1
    assert taken >= 15  # the plain forms do take the fast path
    for argv in ([], ["ingest", "f"], ["show"], ["show", "a", "--bogus"], ["show", "--help"], ["stats", "extra"]):
        assert parse(argv) is None, argv


def test_show_lists_come_in_the_order_sql_gives(tmp_path: Path) -> None:
    """`show` sorts a generation's verdicts, filter decisions, releases and edits itself: as ORDER BY would."""
    from catalogs.query import show, sql
    from releases.release import create_release
    from review.decisions import Decision, apply
    from tests.catalogs.test_roundtrip import build

    cat, _ = build(tmp_path)
    gid = sql(cat, "SELECT generation_id FROM generation_meta ORDER BY 1 LIMIT 1")[1][0][0]
    cat.add_verdicts([{"generation_id": gid, "judge": judge, "judge_version": version, "score": 1.0, "passed": True,
                       "reason": "ok", "details": {}}
                      for judge, version in (("z", "2"), ("a", "10"), ("z", "10"), ("a", "9"), ("é", "1"))])
    cat.add_filter_decisions([{"generation_id": gid, "filter": name, "filter_version": "1", "params_hash": phash,
                               "passed": True, "reason": "ok", "value": 0.0}
                              for name, phash in (("length", "h2"), ("dedup", "h1"), ("length", "h1"))])
    for name in ("zeta", "alpha", "mid"):
        create_release(cat, name, where="true")
    apply(cat, [Decision(generation_id=gid, reviewer=who, decision="edit", reasoning=f"By {who}.",
                         answer="\\boxed{0}") for who in ("bo", "al")])
    data = show(cat, gid)

    def rows(query: str) -> list[tuple[object, ...]]:
        return sql(cat, query.replace("GID", f"'{gid}'"))[1]

    assert [(v["judge"], v["judge_version"]) for v in data["verdicts"]] == rows(
        "SELECT judge, judge_version FROM verdicts WHERE generation_id = GID ORDER BY judge, judge_version")
    assert [(f["filter"], f["filter_version"]) for f in data["filter_decisions"]] == rows(
        "SELECT filter, filter_version FROM filter_decisions WHERE generation_id = GID ORDER BY filter, filter_version")
    assert [r["release_name"] for r in data["releases"]] == ["alpha", "mid", "zeta"]
    assert [(e["generation_id"], e["edited_at"]) for e in data["edits"]] == rows(
        "SELECT generation_id, edited_at FROM generation_meta WHERE parent_id = GID ORDER BY edited_at, generation_id")
    assert len(data["verdicts"]) == 8 and len(data["filter_decisions"]) == 4 and len(data["edits"]) == 2


def test_a_bad_query_fails_before_any_wait_on_the_lock(catalog: tuple[Path, str]) -> None:
    """`r1f sql` parses its query before it opens the catalog: a typo is answered while a writer holds the file,
    with the parse error (not the lock's)."""
    import textwrap

    cat, _ = catalog
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, duckdb
        con = duckdb.connect({str(cat / "catalog.duckdb")!r})
        print("open", flush=True)
        sys.stdin.readline()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "open"
        for query, message in (("SELEC 1", "SQL does not parse"), ("DROP TABLE prompts", "read-only"),
                               ("SELECT 1; SELECT 2", "exactly one"), ("SELECT 1", "Could not set lock")):
            proc = r1f("sql", query, "--lock-timeout", "0.5", catalog=cat, check=False)
            assert proc.returncode == 2 and message in proc.stderr, (query, proc.stderr)
    finally:
        writer.kill()


def test_a_reader_with_named_views_defines_those_alone(catalog: tuple[Path, str]) -> None:
    from catalogs import Catalog

    cat = Catalog(catalog[0], create=False)
    with cat.reader(views=["prompts", "generations"]) as con:
        names = {r[0] for r in con.execute("SELECT view_name FROM duckdb_views() WHERE database_name = 'memory' "
                                           "AND NOT internal").fetchall()}
        assert names == {"prompts", "generations", "generation_texts"}
        assert con.execute("SELECT count(*) FROM generations WHERE text IS NOT NULL").fetchone()[0] == 9
    with pytest.raises(ValueError, match="no reader view named verdict"):
        with cat.reader(views=["verdict"]):
            pass
    # A source alone reads the table on a plain connection; the same rows as the predicate through the views.
    assert cat.prompts(source="s").equals(cat.prompts(where="source = 's'"))
    assert len(cat.prompts(source="s")) == 3 and len(cat.prompts(source="nope")) == 0
