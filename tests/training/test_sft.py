"""`r1f train sft`: a few real SFT steps on an exported release with the tiny model, recorded in the catalog."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from r1f.cli import app
from tests.training.conftest import write_recipe


def sft_recipe(tmp_path: Path, model: Path, release: str, **extra: str) -> Path:
    body = "\n".join(f"{k}: {v}" for k, v in extra.items())
    return write_recipe(tmp_path / "sft.yaml", f"""
model: {model}
release: {release}
output_dir: {tmp_path / 'out'}
chat_template: chatml
{body}
trl:
  max_steps: 6
  per_device_train_batch_size: 4
  learning_rate: 0.001
  logging_steps: 1
  save_steps: 3
  max_length: 256
""")


def test_sft_loss_goes_down_and_the_catalog_records_the_training(tmp_path, tiny_model_dir, toy_catalog):
    from training.sft import run_sft

    catalog, release = toy_catalog
    result = run_sft(catalog, sft_recipe(tmp_path, tiny_model_dir, release))
    # Four samples, batch four: every step sees the same batch, so the loss must fall.
    losses = [e["loss"] for e in result["log_history"] if "loss" in e]
    assert len(losses) == 6 and losses[-1] < losses[0] - 0.5, losses

    out = tmp_path / "out"
    assert (out / "model.safetensors").exists() and (out / "checkpoint-6").is_dir()
    card = (out / "README.md").read_text()
    assert release in card and result["manifest_sha256"] in card
    # The end-of-turn token is the EOS, so the trained model stops at the end of its turn.
    tok = json.loads((out / "tokenizer_config.json").read_text())
    assert tok["eos_token"] == "<|im_end|>" and "{% generation %}" in (tok.get("chat_template") or
                                                                     (out / "chat_template.jinja").read_text())
    from transformers import AutoTokenizer

    gen = json.loads((out / "generation_config.json").read_text())
    assert gen["eos_token_id"][0] == AutoTokenizer.from_pretrained(out).convert_tokens_to_ids("<|im_end|>")

    query = "SELECT kind, base_model, release_name, manifest_sha256, status, metrics, output_dir FROM trainings"
    res = CliRunner().invoke(app, ["sql", query, "--json", "--catalog", str(catalog.root)])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    row = next(r for r in rows if r["output_dir"] == str(out.resolve()))
    assert row["kind"] == "sft" and row["status"] == "finished" and row["release_name"] == release
    assert row["base_model"] == str(tiny_model_dir) and row["manifest_sha256"] == result["manifest_sha256"]
    metrics = json.loads(row["metrics"])
    assert metrics["final_loss"] < metrics["first_loss"]
    assert [p["loss"] for p in metrics["curve"]] == pytest.approx(losses)  # one point per logged step


def test_cli_check_loads_no_weights_and_errors_exit_2(tmp_path, tiny_model_dir, toy_catalog):
    import subprocess
    import sys

    catalog, release = toy_catalog
    good = sft_recipe(tmp_path, tiny_model_dir, release)
    res = CliRunner().invoke(app, ["train", "sft", str(good), "--check", "--json", "--catalog", str(catalog.root)])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["status"] == "ok" and not (tmp_path / "out").exists()

    bad = write_recipe(tmp_path / "bad.yaml", good.read_text().replace(f"release: {release}", "release: nope"))
    proc = subprocess.run([sys.executable, "-m", "r1f", "train", "sft", str(bad), "--catalog", str(catalog.root)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "bad.yaml: release: no release named 'nope'" in proc.stderr
    assert "Traceback" not in proc.stderr
