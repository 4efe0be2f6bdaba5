"""Bad training recipes: each a clear error naming the file and the key, before any weight loads."""
from __future__ import annotations

from pathlib import Path

import pytest

from catalogs.errors import RecipeError
from tests.training.conftest import write_recipe


def _sft(tmp_path: Path, model: Path | str, release: str, extra: str = "", trl: str = "  max_steps: 1\n") -> Path:
    return write_recipe(tmp_path / "bad.yaml", f"""
model: {model}
release: {release}
output_dir: {tmp_path / 'out'}
{extra}
trl:
{trl}""")


def _check(catalog, path: Path) -> str:
    from training.sft import prepare_sft

    with pytest.raises(RecipeError) as info:
        prepare_sft(catalog, path)
    assert not (path.parent / "out").exists()  # nothing written
    return str(info.value)


def test_release_that_does_not_exist(tmp_path, tiny_model_dir, toy_catalog):
    catalog, _ = toy_catalog
    msg = _check(catalog, _sft(tmp_path, tiny_model_dir, "no-such-release", "chat_template: chatml"))
    assert "bad.yaml" in msg and "release" in msg and "no-such-release" in msg and "toy-v1" in msg


def test_model_path_that_does_not_exist(tmp_path, toy_catalog):
    catalog, release = toy_catalog
    msg = _check(catalog, _sft(tmp_path, tmp_path / "missing-model", release))
    assert "bad.yaml: model:" in msg and "does not exist" in msg


def test_unknown_recipe_key_top_level_and_in_trl(tmp_path, tiny_model_dir, toy_catalog):
    catalog, release = toy_catalog
    msg = _check(catalog, _sft(tmp_path, tiny_model_dir, release, "chat_templat: chatml"))
    assert "bad.yaml:4: chat_templat: unknown key; did you mean chat_template?" in msg
    msg = _check(catalog, _sft(tmp_path, tiny_model_dir, release, trl="  learning_rat: 0.1\n"))
    assert "bad.yaml:6: trl.learning_rat: unknown key; did you mean learning_rate?" in msg


def test_value_trl_refuses_names_the_key(tmp_path, tiny_model_dir, toy_catalog):
    catalog, release = toy_catalog
    msg = _check(catalog, _sft(tmp_path, tiny_model_dir, release, trl="  lr_scheduler_type: sideways\n"))
    assert "bad.yaml: trl.lr_scheduler_type:" in msg and "sideways" in msg


def test_chat_template_without_generation_marker(tmp_path, tiny_model_dir, toy_catalog):
    catalog, release = toy_catalog
    plain = tmp_path / "plain.jinja"
    plain.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    msg = _check(catalog, _sft(tmp_path, tiny_model_dir, release, f"chat_template: {plain}"))
    assert "bad.yaml: chat_template:" in msg and "generation" in msg and str(plain) in msg
    # The tiny model's own ChatML template has no marker either, and trl cannot patch it: the fix is named.
    msg = _check(catalog, _sft(tmp_path, tiny_model_dir, release))
    assert "bad.yaml: chat_template:" in msg and "set chat_template: chatml" in msg


def test_eval_on_an_engine_nobody_registered(tmp_path, tiny_model_dir):
    from tests.catalogs.helpers import r1f

    recipe = write_recipe(tmp_path / "eval.yaml", f"""
backend: {{name: vllm, model: {tiny_model_dir}}}
benchmarks:
  - {{name: math500, file: {Path(__file__).parent / 'data' / 'math500_3.jsonl'}}}
""")
    res = r1f("eval", str(recipe), "--engine", "slurm", catalog=tmp_path / "cat", check=False)
    assert res.returncode == 2, res.stderr
    assert "--engine slurm: not available here; use one of: local, ray" in res.stderr
    assert not (tmp_path / "cat").exists()  # refused before the catalog is created
