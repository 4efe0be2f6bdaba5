"""Recipe validation: every bad recipe fails before any generation, naming the file, the key and the fix."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest
from catalogs.query import sql
from factory.generate import generate_from_recipe
from factory.recipe import RecipeError, check_model_path, load_recipe
from factory.templates import TemplateError, template_from_recipe

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


MINIMAL = """\
backend:
  name: vllm
  model: org/some-model
"""


def test_minimal_recipe_defaults(tmp_path: Path) -> None:
    r = load_recipe(write(tmp_path, MINIMAL))
    assert r.backend.model == "org/some-model"
    assert r.k == 1 and r.round_size == 1 and r.retry_samples == 2
    assert r.template.name == "reasoning" and r.judges == []
    assert r.sampling.temperature == 0.6 and r.sampling.top_p == 0.95


def test_unknown_key_names_key_line_and_suggestion(tmp_path: Path) -> None:
    p = write(tmp_path, MINIMAL + "sampling:\n  temperatur: 0.7\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert f"{p}:5" in msg
    assert "sampling.temperatur: unknown key; did you mean temperature?" in msg


def test_unknown_top_level_key_lists_allowed(tmp_path: Path) -> None:
    p = write(tmp_path, MINIMAL + "frobnicate: 3\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert "frobnicate: unknown key" in msg and "samples_per_prompt" in msg


def test_unknown_key_in_list_item(tmp_path: Path) -> None:
    p = write(tmp_path, MINIMAL + "judges:\n  - name: math\n    parms: {}\n")
    with pytest.raises(RecipeError, match=r"judges\[0\]\.parms: unknown key; did you mean params\?"):
        load_recipe(p)


def test_wrong_type_names_field(tmp_path: Path) -> None:
    p = write(tmp_path, MINIMAL + "samples_per_prompt: four\n")
    with pytest.raises(RecipeError) as e:
        load_recipe(p)
    msg = str(e.value)
    assert f"{p}:4: samples_per_prompt" in msg and "'four'" in msg and "right type" in msg


def test_missing_required_section(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"backend: required key is missing; add it"):
        load_recipe(write(tmp_path, "samples_per_prompt: 2\n"))


def test_bad_literal_and_bounds(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"backend\.name: .*'tgi'.*allowed values"):
        load_recipe(write(tmp_path, "backend: {name: tgi, model: m}\n"))
    with pytest.raises(RecipeError, match=r"sampling\.top_p"):
        load_recipe(write(tmp_path, MINIMAL + "sampling: {top_p: 1.5}\n"))


def test_budget_below_k(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"raise budget\.max_samples to at least 4"):
        load_recipe(write(tmp_path, MINIMAL + "samples_per_prompt: 4\nbudget: {max_samples: 2}\n"))


def test_openai_needs_base_url(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"backend\.base_url is required"):
        load_recipe(write(tmp_path, "backend: {name: openai, model: tiny}\n"))


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    p = write(tmp_path, "backend:\n  name: vllm\n  model: [unclosed\n")
    # the list opened on line 3 is still open when the file ends, on line 4
    with pytest.raises(RecipeError, match=r"recipe\.yaml:4: not valid YAML \(expected ',' or '\]'"):
        load_recipe(p)


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_missing_model_path(tmp_path: Path) -> None:
    r = load_recipe(write(tmp_path, "backend: {name: vllm, model: ./no-such-model}\n"))
    with pytest.raises(RecipeError) as e:
        check_model_path(r)
    assert "backend.model" in str(e.value) and "does not exist" in str(e.value) and "Hub id" in str(e.value)
    # An existing folder is fine; a Hub id must be cached or on the Hub (tests below, through the CLI).
    check_model_path(load_recipe(write(tmp_path, f"backend: {{name: vllm, model: {tmp_path}}}\n")))


def test_relative_model_path_resolved_beside_recipe(tmp_path: Path) -> None:
    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "recipes").mkdir()
    p = write(tmp_path / "recipes", "backend: {name: vllm, model: ../models/m}\n")
    assert load_recipe(p).backend.model == str((tmp_path / "models" / "m").resolve())


def test_template_lacking_placeholder(tmp_path: Path) -> None:
    tpl = write(tmp_path, "name: mine\nversion: '2'\nstyle: reasoning\nuser: Solve the problem.\n", "mine.yaml")
    r = load_recipe(write(tmp_path, MINIMAL + f"template: {{file: {tpl.name}}}\n"))
    with pytest.raises(TemplateError) as e:
        template_from_recipe(r)
    msg = str(e.value)
    assert "mine.yaml" in msg and "{prompt}" in msg and "add them" in msg


def test_cold_start_template_needs_examples_placeholder(tmp_path: Path) -> None:
    tpl = write(tmp_path, "name: cs\nversion: '1'\nstyle: cold_start\nuser: 'Problem: {prompt}'\n"
                "example: '{problem} {reasoning} {summary}'\n", "cs.yaml")
    r = load_recipe(write(tmp_path, MINIMAL + f"template: {{file: {tpl}}}\n"))
    with pytest.raises(TemplateError, match=r"\{examples\}"):
        template_from_recipe(r)


def test_unknown_template_name_and_pinned_version(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"no template named 'r2_zero'; use one of .*r1_zero"):
        template_from_recipe(load_recipe(write(tmp_path, MINIMAL + "template: {name: r2_zero}\n")))
    with pytest.raises(TemplateError, match=r"pins version '7'"):
        template_from_recipe(load_recipe(write(tmp_path, MINIMAL + "template: {name: r1_zero, version: '7'}\n")))


def test_example_recipes_parse() -> None:
    # The generation recipes (other stages keep their own recipes in the same folder).
    paths = sorted((REPO / "recipes").glob("generate_*.yaml")) + sorted((REPO / "recipes").glob("cold_start_*.yaml"))
    assert len(paths) >= 4
    for p in paths:
        r = load_recipe(p)
        template_from_recipe(r)
    names = {load_recipe(p).backend.name for p in paths}
    assert names == {"vllm", "openai"}


def _catalog_with(tmp_path: Path, records: list[dict]) -> Catalog:
    src = tmp_path / "prompts.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    cat = Catalog(tmp_path / "catalog")
    ingest(cat, src, IngestOptions(source="test"))
    return cat


def test_prompt_longer_than_context_fails_before_generation(tmp_path: Path, tiny_model_dir: Path) -> None:
    cat = _catalog_with(tmp_path, [
        {"problem": "What is 1 + 1?", "domain": "math"},
        {"problem": " ".join(f"word{i}" for i in range(400)), "domain": "math"},
    ])
    p = write(tmp_path, f"backend: {{name: vllm, model: {tiny_model_dir}, max_model_len: 128}}\n"
                        "sampling: {max_tokens: 16}\n")
    with pytest.raises(RecipeError) as e:
        generate_from_recipe(p, cat)
    msg = str(e.value)
    assert "longer than the model's context of 128 tokens" in msg and "p_" in msg and "max_model_len" in msg
    # Nothing started: no run, no generation.
    assert sql(cat, "select count(*) from runs")[1][0][0] == 0
    assert len(cat.generations()) == 0


def test_missing_model_fails_before_generation(tmp_path: Path) -> None:
    cat = _catalog_with(tmp_path, [{"problem": "hi"}])
    p = write(tmp_path, "backend: {name: vllm, model: /definitely/not/here}\n")
    with pytest.raises(RecipeError, match="does not exist"):
        generate_from_recipe(p, cat)
    assert sql(cat, "select count(*) from runs")[1][0][0] == 0


def test_unknown_judge_and_bad_where(tmp_path: Path) -> None:
    cat = _catalog_with(tmp_path, [{"problem": "hi"}])
    local = f"backend: {{name: vllm, model: {tmp_path}}}\n"  # a folder: passes the model check offline
    p = write(tmp_path, local + "judges: [math_acuracy]\n")
    with pytest.raises(RecipeError, match=r"judges\[0\]\.name: unknown judge 'math_acuracy'; use one of: .*math_accuracy"):
        generate_from_recipe(p, cat, judges={"mine": lambda s: True})
    p = write(tmp_path, local + "prompts: {where: \"nosuchcolumn = 1\"}\n")
    with pytest.raises(RecipeError, match=r"prompts\.where"):
        generate_from_recipe(p, cat)
    p = write(tmp_path, local + "prompts: {where: \"domain = 'chemistry'\"}\n")
    with pytest.raises(RecipeError, match=r"matches no prompts"):
        generate_from_recipe(p, cat)


# ---------------------------------------------------------------------------------------------------
# Through the command line, as a user meets them: exit code 2, one named message, nothing written.

def run_r1f(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    full = {**os.environ, "COLUMNS": "250", "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "r1f", *args], capture_output=True, text=True, timeout=300, check=False,
                          env=full, cwd=cwd)


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_cli_missing_recipe_writes_no_catalog(tmp_path: Path) -> None:
    cat_dir = tmp_path / "catalog"
    r = run_r1f("generate", str(tmp_path / "missing.yaml"), "--catalog", str(cat_dir))
    assert r.returncode == 2, r.stderr
    assert "missing.yaml" in one_line(r.stderr) and "not found" in r.stderr and "Traceback" not in r.stderr
    assert not cat_dir.exists()  # failed on its arguments: wrote nothing


def test_cli_generate_needs_an_ingested_catalog(tmp_path: Path, tiny_model_dir: Path) -> None:
    p = write(tmp_path, f"backend: {{name: vllm, model: {tiny_model_dir}}}\n")
    r = run_r1f("generate", str(p), "--catalog", str(tmp_path / "nothing-here"))
    assert r.returncode == 2 and "no catalog at" in r.stderr and "r1f ingest" in one_line(r.stderr)
    assert not (tmp_path / "nothing-here").exists()


def fake_cached_model(hf_home: Path, repo_id: str) -> None:
    """A model in the Hugging Face cache layout (what `hf download` leaves): refs/main names a snapshot."""
    repo = hf_home / "hub" / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    snap = repo / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")


def test_cli_hub_model_offline_and_uncached_fails_fast_and_named(tmp_path: Path) -> None:
    cat = _catalog_with(tmp_path, [{"problem": "hi"}])
    before = sql(cat, "select count(*) from runs")[1][0][0]
    hf_home = tmp_path / "hf"
    fake_cached_model(hf_home, "org/cached-model")
    env = {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1"}

    p = write(tmp_path, "backend: {name: vllm, model: org/not-downloaded}\n")
    r = run_r1f("generate", str(p), "--catalog", str(cat.root), env=env)
    msg = one_line(r.stderr)
    assert r.returncode == 2, r.stderr
    assert f"{p}: backend.model: 'org/not-downloaded' is not a local folder and not in the Hugging Face cache" in msg
    assert "HF_HUB_OFFLINE is set" in msg and "hf download org/not-downloaded" in msg
    assert "Traceback" not in r.stderr and len(r.stderr.splitlines()) < 8
    assert sql(cat, "select count(*) from runs")[1][0][0] == before  # nothing registered

    # The same recipe naming a model that is in the cache passes the check (and goes on to plan the run).
    p2 = write(tmp_path, "backend: {name: vllm, model: org/cached-model}\n", "cached.yaml")
    r = run_r1f("generate", str(p2), "--dry-run", "--catalog", str(cat.root), env=env)
    assert r.returncode == 0, r.stderr
    assert "backend.model" not in r.stderr and "Nothing was generated" in one_line(r.stdout)


def test_cli_hub_model_unknown_on_the_hub(tmp_path: Path) -> None:
    """Online, a Hub id that is not cached is looked up on the Hub (one metadata call); a fake Hub at
    HF_ENDPOINT answers as the real one does for a repository that does not exist."""
    from tests.factory.fault_proxy import LoopbackServer, Request, Response

    asked: list[str] = []

    async def hub(req: Request) -> Response:
        asked.append(req.path)
        return Response(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"})

    cat = _catalog_with(tmp_path, [{"problem": "hi"}])
    p = write(tmp_path, "backend: {name: vllm, model: org/no-such-model}\n")
    with LoopbackServer(hub) as server:
        env = {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1",
               "HF_ENDPOINT": f"http://127.0.0.1:{server.port}"}
        r = run_r1f("generate", str(p), "--catalog", str(cat.root), env=env)
    assert r.returncode == 2, r.stderr
    msg = one_line(r.stderr)
    assert f"{p}: backend.model: no model 'org/no-such-model' on the Hub" in msg and "local model folder" in msg
    assert any("/api/models/org/no-such-model" in a for a in asked)
    assert "Traceback" not in r.stderr
