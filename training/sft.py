"""`r1f train sft RECIPE`: trl's SFTTrainer on a catalog release, recorded in the catalog.

Order matters: every check that can fail (recipe keys, trl's config, the release, the model path, the
chat template) runs before any weight loads. The data is the release's own export (`export_release`),
never a copy made by hand, so the trained model names exactly the manifest it saw.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.chat import apply_template, resolve_chat_template, stop_ids
from training.recipe import SFTRecipe, load_recipe
from training.runs import (
    check_model,
    final_metrics,
    last_checkpoint,
    manifest_sha256,
    now,
    record,
    release_manifest,
    torch_dtype,
    training_id,
    write_model_card,
)

if TYPE_CHECKING:
    from catalogs.store import Catalog

log = logging.getLogger("training")


def load_tokenizer(recipe: Any) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(recipe.model)


def release_dataset(catalog: Catalog, release: str, out_dir: Path) -> Any:
    """The release exported for trl (chat `messages`), as an in-memory `datasets.Dataset`."""
    import datasets
    import pyarrow.parquet as pq
    from accelerate import PartialState

    from releases.release import export_release

    path = out_dir / f"release-{release}.parquet"
    with PartialState().main_process_first():  # rank 0 exports; the other ranks then read its file
        if PartialState().is_main_process:
            export_release(catalog, release, path, fmt="parquet", style="messages", overwrite=True)
    return datasets.Dataset(pq.read_table(path, columns=["messages"]))


def prepare_sft(catalog: Catalog, recipe_path: str | Path) -> tuple[SFTRecipe, Any, Any, str | None, str | None]:
    """Everything that can be checked without weights: (recipe, trl config, tokenizer, eot, manifest sha)."""
    recipe: SFTRecipe = load_recipe(recipe_path, SFTRecipe)
    release_manifest(catalog, recipe, recipe.release, "release")
    check_model(recipe)
    tokenizer = load_tokenizer(recipe)
    template, eot = resolve_chat_template(tokenizer, recipe.chat_template, recipe)
    apply_template(tokenizer, template, eot)
    args = recipe.training_args()
    if eot is not None and args.eos_token is None:
        args.eos_token = eot
    return recipe, args, tokenizer, eot, manifest_sha256(catalog, recipe.release)


def run_sft(catalog: Catalog, recipe_path: str | Path, *, resume: bool = False) -> dict[str, Any]:
    recipe, args, tokenizer, eot, sha = prepare_sft(catalog, recipe_path)
    out = Path(args.output_dir)
    checkpoint = last_checkpoint(str(out), recipe) if resume else None
    out.mkdir(parents=True, exist_ok=True)
    dataset = release_dataset(catalog, recipe.release, out)
    if len(dataset) == 0:
        from catalogs.errors import RecipeError

        raise RecipeError(f"{recipe.where}: release: release {recipe.release!r} has no members; nothing to train on")

    tid = training_id("sft", recipe, sha)
    started = now()
    common: dict[str, Any] = {"tid": tid, "kind": "sft", "recipe": recipe, "release": recipe.release,
                              "release_sha": sha, "prompts_where": None}
    record(catalog, **common, status="running", metrics=None, started_at=started)

    from transformers import AutoModelForCausalLM
    from trl import SFTTrainer

    model = AutoModelForCausalLM.from_pretrained(recipe.model, dtype=torch_dtype(recipe.dtype))
    ids = stop_ids(tokenizer, model.config, eot)
    if ids:
        model.generation_config.eos_token_id = ids
        model.config.eos_token_id = ids[0]
    log.info("sft %s: %s on release %s (%d samples) -> %s", tid, recipe.model, recipe.release, len(dataset), out)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer)
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
    except BaseException:
        record(catalog, **common, status="failed", metrics=None, started_at=started, finished_at=now())
        raise
    trainer.save_model(str(out))
    tokenizer.save_pretrained(str(out))
    model.generation_config.save_pretrained(str(out))
    write_model_card(trainer, str(out), **common)
    metrics = final_metrics(trainer, result)
    record(catalog, **common, status="finished", metrics=metrics, started_at=started, finished_at=now())
    return {"training_id": tid, "output_dir": str(out.resolve()), "release": recipe.release,
            "manifest_sha256": sha, "metrics": metrics, "log_history": trainer.state.log_history}
