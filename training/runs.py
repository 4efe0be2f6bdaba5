"""What every training run shares: checks before weights load, the catalog record, the model card."""
from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from catalogs.errors import CatalogError, RecipeError
from catalogs.ids import canonical_json, content_hash

if TYPE_CHECKING:
    import duckdb

    from catalogs.store import Catalog

log = logging.getLogger("training")

_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


class TrainingStore(Protocol):
    """What a training run needs of the catalog beside its release: reads (a release's manifest hash, the
    prompts GRPO trains on) and the record of the run. A stage that hands the catalog to `releases` (the
    manifest, the export) takes the whole `Catalog`, as those functions do."""

    def connect(self, write: bool = False) -> AbstractContextManager[duckdb.DuckDBPyConnection]: ...

    def reader(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]: ...

    def record_training(self, row: dict[str, Any]) -> str: ...


def model_is_missing(model: str) -> bool:
    """Neither an existing local path nor a Hub id (org/name). No download is tried here."""
    if Path(os.path.expanduser(model)).exists():
        return False
    return model.startswith(("/", ".", "~")) or not _HUB_ID.match(model)


def check_model(recipe: Any) -> None:
    """A local model path must exist; a Hub id must look like one (org/name). No download is tried here."""
    model = recipe.model
    if model_is_missing(model):
        if recipe.previous_stage:
            raise RecipeError(f"{recipe.where}: model: {model!r} does not exist yet: it is the output of an earlier "
                              f"stage; run `{recipe.previous_stage}` first")
        raise RecipeError(f"{recipe.where}: model: model path {model!r} does not exist; give the folder of a "
                          f"saved model (config.json, tokenizer, weights) or a Hub id like Qwen/Qwen2.5-Math-7B")


def release_manifest(catalog: Catalog, recipe: Any, name: str, key: str) -> dict[str, Any]:
    from releases.release import get_manifest

    try:
        return get_manifest(catalog, name)
    except CatalogError as exc:
        first = f"run `{recipe.previous_stage}` first" if recipe.previous_stage else \
            f"create it first with `r1f release {name} ...`"
        raise RecipeError(f"{recipe.where}: {key}: {exc} {first[0].upper() + first[1:]}, or name an existing "
                          f"release") from None


def manifest_sha256(catalog: TrainingStore, name: str) -> str | None:
    with catalog.connect() as con:
        row = con.execute("SELECT manifest_sha256 FROM releases WHERE name = ?", [name]).fetchone()
    return row[0] if row else None


def recipe_json(recipe: Any) -> dict[str, Any]:
    """The recipe as recorded: every field, but only the trl keys the recipe set (not trl's 130 defaults)."""
    body = recipe.model_dump(mode="json", exclude={"source_path", "trl"})
    if hasattr(recipe, "trl_args"):
        import json

        body["trl"] = json.loads(json.dumps(recipe.trl_args(), default=str))
    return body


# Reward fields added after catalogs already held trainings, with their defaults: left out of the id while at their
# default, so a recipe that does not use them keeps the id it had (and its `trainings` row) across the upgrade.
LATER_REWARD_FIELDS: dict[str, Any] = {"where": None, "backend": None, "attempts": 3, "gated_by": []}


def training_id(kind: str, recipe: Any, release_sha: str | None) -> str:
    """Content id: the same recipe on the same release into the same folder is the same training."""
    body = recipe_json(recipe)
    for reward in body.get("rewards") or []:
        for key, default in LATER_REWARD_FIELDS.items():
            if key in reward and reward[key] == default:
                del reward[key]
    return "t_" + content_hash("training", kind, body, release_sha)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def is_main_process() -> bool:
    """Under `accelerate launch` every rank runs this code; only rank 0 writes the catalog and the card."""
    return int(os.environ.get("RANK", "0")) == 0


def record(catalog: TrainingStore, *, tid: str, kind: str, recipe: Any, release: str | None, release_sha: str | None,
           prompts_where: str | None, status: str, metrics: dict[str, Any] | None, started_at: dt.datetime,
           finished_at: dt.datetime | None = None) -> None:
    if not is_main_process():
        return
    catalog.record_training({
        "training_id": tid, "kind": kind, "model": str(Path(recipe.output_dir).resolve()),
        "base_model": recipe.model, "release_name": release, "manifest_sha256": release_sha,
        "prompts_where": prompts_where, "recipe": recipe_json(recipe),
        "status": status, "metrics": metrics or {}, "output_dir": str(Path(recipe.output_dir).resolve()),
        "started_at": started_at, "finished_at": finished_at})


def last_checkpoint(output_dir: str, recipe: Any) -> str:
    from transformers.trainer_utils import get_last_checkpoint

    found = get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None
    if not found:
        raise RecipeError(f"{recipe.where}: output_dir: --resume found no checkpoint-* folder in {output_dir}; "
                          f"run without --resume to start, or point output_dir at the killed run's folder")
    return found


# What a training's curve keeps of each logged step (trl's names): SFT's loss; GRPO's reward, its spread, each reward
# function's mean (`rewards/NAME/mean`), the mean completion length and the KL to the reference; a reward model's
# accuracy (chosen scored above rejected) and margin on the step's pairs.
CURVE_KEYS = ("loss", "reward", "reward_std", "completions/mean_length", "kl", "accuracy", "margin")


def curve(log_history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One point per logged training step: its `step` and the `CURVE_KEYS` (and `rewards/*/mean`) it logged. The
    run's closing summary (train_loss, train_runtime) and eval logs are not steps and are left out. A non-finite
    value (a NaN loss) is kept as null, so the catalog's JSON stays standard JSON."""
    points = []
    for entry in log_history:
        point = {k: float(v) if math.isfinite(v) else None for k, v in entry.items()
                 if (k in CURVE_KEYS or (k.startswith("rewards/") and k.endswith("/mean")))
                 and isinstance(v, (int, float))}
        if point and "step" in entry:
            points.append({"step": int(entry["step"]), **point})
    return points


def final_metrics(trainer: Any, result: Any) -> dict[str, Any]:
    """The run's closing numbers, with its `curve` (one point per logged step) for plots of reward and length."""
    metrics: dict[str, Any] = {k: v for k, v in (result.metrics or {}).items() if isinstance(v, (int, float, str))}
    metrics["curve"] = curve(trainer.state.log_history)
    logs = [e for e in trainer.state.log_history if "loss" in e]
    if logs:
        metrics["final_loss"] = float(logs[-1]["loss"])
        metrics["first_loss"] = float(logs[0]["loss"])
    metrics["global_step"] = int(trainer.state.global_step)
    tokens = getattr(trainer.state, "num_input_tokens_seen", None)
    if tokens:
        metrics["tokens_seen"] = int(tokens)
    return metrics


def without_steps(summary: dict[str, Any]) -> dict[str, Any]:
    """A training's summary without its per-step logs (trl's log_history, the metrics' curve): what `r1f train`
    prints and a pipeline stage records. The curve stays in the catalog's `trainings` row."""
    out = {k: v for k, v in summary.items() if k != "log_history"}
    if isinstance(out.get("metrics"), dict):
        out["metrics"] = {k: v for k, v in out["metrics"].items() if k != "curve"}
    return out


def write_model_card(trainer: Any, output_dir: str, *, kind: str, recipe: Any, release: str | None,
                     release_sha: str | None, prompts_where: str | None, tid: str) -> None:
    """trl's model card, plus a section naming the data: the release and its manifest hash."""
    if not is_main_process():
        return
    try:
        trainer.create_model_card(model_name=Path(output_dir).name, dataset_name=release,
                                  tags=["r1-factory", kind])
    except Exception as exc:  # noqa: BLE001  the card is documentation; a failure must not lose the model
        log.warning("trl's model card failed (%s); writing r1-factory's section alone", exc)
    card = Path(output_dir) / "README.md"
    text = card.read_text(encoding="utf-8") if card.exists() else f"# {Path(output_dir).name}\n"
    lines = ["", "## Training data (r1-factory)", "",
             f"- training: `{tid}` ({kind}), recorded in the catalog's `trainings` view",
             f"- base model: `{recipe.model}`"]
    if release:
        lines.append(f"- release: `{release}` (manifest sha256 `{release_sha}`)")
    if prompts_where:
        lines.append(f"- prompts: `{prompts_where}`")
    lines.append(f"- recipe: `{canonical_json(recipe_json(recipe))}`")
    card.write_text(text.rstrip("\n") + "\n" + "\n".join(lines) + "\n", encoding="utf-8")


def torch_dtype(setting: str) -> Any:
    import torch

    if setting == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, setting)
