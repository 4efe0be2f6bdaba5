"""A local model is named in run ids by its content, not its folder: the same eval of the same model, copied to two
fresh folders with two fresh catalogs (as two `r1f demo` runs in fresh `--out` folders are), writes the same
samples, ids and seeds included. Before, the run id held the folder's path, so every seed, so every sample, differed."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from backends.config import BackendConfig, model_sha256
from r1f.cli import app

BENCH = Path(__file__).resolve().parents[1] / "training" / "data" / "math500_3.jsonl"


def copy_model(src: Path, dst: Path, run: str) -> Path:
    """The model in a new folder, with what a trainer leaves beside it: its pickled arguments (which hold the
    output path), a model card and a hidden marker, each different per folder."""
    shutil.copytree(src, dst)
    for name in ("training_args.bin", "README.md", ".done"):
        (dst / name).write_text(f"{run}: {dst}\n")
    return dst


def test_model_sha256_names_the_model_files_only(tmp_path: Path, tiny_model_dir: Path) -> None:
    a = copy_model(tiny_model_dir, tmp_path / "a" / "model", "a")
    b = copy_model(tiny_model_dir, tmp_path / "b" / "model", "b")
    assert model_sha256(a) == model_sha256(b) == model_sha256(tiny_model_dir)
    assert model_sha256("org/not-a-folder") is None
    assert BackendConfig(name="openai", model=str(a), base_url="http://127.0.0.1:1/v1").model_sha256() is None
    weights = next(b.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes() + b"\0")
    assert model_sha256(b) != model_sha256(a)


def test_the_same_model_in_two_fresh_folders_samples_the_same(tmp_path: Path, tiny_model_dir: Path) -> None:
    samples = []
    for run in ("a", "b"):
        folder = tmp_path / run
        model = copy_model(tiny_model_dir, folder / "model", run)
        recipe = folder / "eval.yaml"
        recipe.write_text(f"""
name: tiny-hf
backend: {{name: transformers, model: {model}, engine_kwargs: {{batch_size: 4}}}}
benchmarks:
  - {{name: math500, file: {BENCH}}}
k: 3
sampling: {{max_tokens: 12, temperature: 1.0, seed: 7}}
""")
        catalog = folder / "catalog"
        res = CliRunner().invoke(app, ["eval", str(recipe), "--json", "--catalog", str(catalog)])
        assert res.exit_code == 0, res.output
        res = CliRunner().invoke(app, ["sql", "SELECT g.run_id, g.generation_id, g.seed, t.text FROM generation_meta g "
                                       "JOIN generation_texts t USING (generation_id) ORDER BY generation_id", "--json",
                                       "--catalog", str(catalog)])
        assert res.exit_code == 0, res.output
        samples.append(json.loads(res.stdout))
    a, b = samples
    assert len(a) == 9 and len({s["seed"] for s in a}) == 9
    assert a == b


def test_file_hashes_are_remembered_by_size_and_time(tmp_path: Path, tiny_model_dir: Path, monkeypatch) -> None:
    """A model's files are read once: their hashes are kept by path, size and modification time under
    $XDG_CACHE_HOME/r1f; a touched file is read again; a cache that is not JSON is ignored."""
    import os

    from catalogs.ids import file_sha256

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    model = copy_model(tiny_model_dir, tmp_path / "m", "m")
    first = model_sha256(model)
    cache = tmp_path / "cache" / "r1f" / "file-sha256.json"
    weights = next(model.glob("*.safetensors")).resolve()
    known = json.loads(cache.read_text())
    assert known[str(weights)][2] == file_sha256(weights)
    known[str(weights)][2] = "0" * 64  # a forged entry: trusted while size and time hold, which shows it is read
    cache.write_text(json.dumps(known))
    assert model_sha256(model) != first
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # touched: read again
    assert model_sha256(model) == first
    cache.write_text("not json")
    assert model_sha256(model) == first
