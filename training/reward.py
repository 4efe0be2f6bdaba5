"""`r1f train reward RECIPE`: trl's RewardTrainer on preference pairs, recorded in the catalog.

A reward model is a sequence classifier with one logit (the reward), trained so that on each pair the chosen text
scores above the rejected one. The pairs are a JSONL file of `{"prompt", "chosen", "rejected"}` rows; `chosen` and
`rejected` are the texts the judge will score (helpfulness: the summary; harmlessness: the whole response). Each
pair is tokenized here, through `judges.preference.reward_model_text`, the text the helpfulness and harmlessness
judges give the model when they score with it (`params: {reward_model: OUTPUT_DIR}`), so the model is trained on
exactly what it will be asked about; trl then trains on those ids as given (its "processed dataset" input).

Order matters, as in SFT: every check that can fail (recipe keys, trl's config, the model path, the pairs file,
each row, the lengths) runs before any weight loads. The run is a `trainings` row of kind 'reward' whose data is the
pairs file: `prompts_where` names it and `manifest_sha256` holds its sha256 (so changed pairs make a new training
id); its metrics are trl's per-step curve (loss, accuracy, margin) and the saved model's accuracy on the pairs,
scored by the judge's own scorer from the saved folder.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalogs.errors import RecipeError
from catalogs.ids import file_sha256
from catalogs.ingest import RecordError, read_jsonl
from judges.preference import RewardModelScorer, reward_model_text, reward_model_tokenizer
from training.recipe import RewardRecipe, load_recipe
from training.runs import (
    TrainingStore,
    check_model,
    final_metrics,
    last_checkpoint,
    now,
    record,
    torch_dtype,
    training_id,
    write_model_card,
)

if TYPE_CHECKING:
    import datasets

log = logging.getLogger("training")

PAIR_KEYS = ("prompt", "chosen", "rejected")
# The longest line of a pairs file (`r1f ingest`'s default record limit).
MAX_PAIR_BYTES = 16 * 2**20


@dataclass
class Pairs:
    """The pairs file's rows that can teach something (chosen differs from rejected), and what was left out."""

    file: Path
    sha256: str
    rows: list[dict[str, str]]
    # Rows whose chosen equals rejected: they carry no preference (their loss has no gradient), so they are dropped.
    tied: int


@dataclass
class PreparedReward:
    recipe: RewardRecipe
    args: Any
    tokenizer: Any
    pairs: Pairs
    # `chosen_ids` and `rejected_ids` of the pairs that fit trl's max_length.
    dataset: datasets.Dataset
    too_long: int


def read_pairs(recipe: RewardRecipe) -> Pairs:
    """The recipe's pairs file, checked row by row; errors name the recipe field or the file and line."""
    path = recipe.pairs_file()
    if not path.is_file():
        raise RecipeError(f"{recipe.where}: pairs.file: {recipe.pairs.file!r} does not exist (looked for {path}); "
                          f"give a JSONL file of {{\"prompt\", \"chosen\", \"rejected\"}} rows (a relative path is "
                          f"taken beside the recipe)")
    rows: list[dict[str, str]] = []
    tied = 0
    # The ingest's JSONL reader: one line at a time (plain or gzip), blank lines skipped, each error at its line.
    for where, obj, _ in read_jsonl(path, MAX_PAIR_BYTES):
        at = f"{path}:{where.removeprefix('line ')}"
        if isinstance(obj, RecordError):
            raise RecipeError(f"{at}: {str(obj).removeprefix(f'{where}: ')}; write one JSON object a line "
                              f"(recipe {recipe.where}, pairs.file)")
        if not isinstance(obj, dict):
            raise RecipeError(f"{at}: a JSON {type(obj).__name__}, not an object; write "
                              f"{{\"prompt\": ..., \"chosen\": ..., \"rejected\": ...}} (recipe {recipe.where}, "
                              f"pairs.file)")
        for key in PAIR_KEYS:
            value = obj.get(key)
            if not isinstance(value, str) or (key != "prompt" and not value.strip()):
                got = "missing" if key not in obj else "empty" if isinstance(value, str) else \
                    f"a {type(value).__name__}, not a string"
                raise RecipeError(f"{at}: {key!r} is {got}; each row needs \"prompt\" (a string) and a non-empty "
                                  f"\"chosen\" and \"rejected\" (recipe {recipe.where}, pairs.file)")
        if obj["chosen"] == obj["rejected"]:
            tied += 1
            continue
        rows.append({key: obj[key] for key in PAIR_KEYS})
    if not rows and not tied:
        raise RecipeError(f"{recipe.where}: pairs.file: {path} holds no pairs; write one {{\"prompt\", \"chosen\", "
                          f"\"rejected\"}} object a line")
    if not rows:
        raise RecipeError(f"{recipe.where}: pairs.file: in all {tied} pairs of {path} \"chosen\" equals \"rejected\", "
                          f"so there is no preference to learn; give pairs whose chosen text is the better one")
    if tied:
        log.warning("reward: %d of the %d pairs in %s have chosen == rejected; left out", tied, tied + len(rows), path)
    return Pairs(path, file_sha256(path), rows, tied)


def encode_pairs(tokenizer: Any, rows: list[dict[str, str]]) -> dict[str, list[list[int]]]:
    """Each pair's chosen and rejected text as the judge's reward model reads it, tokenized as its scorer does."""
    def ids(prompt: str, response: str) -> list[int]:
        return list(tokenizer(reward_model_text(tokenizer, prompt, response))["input_ids"])

    return {"chosen_ids": [ids(r["prompt"], r["chosen"]) for r in rows],
            "rejected_ids": [ids(r["prompt"], r["rejected"]) for r in rows]}


def prepare_reward(recipe_path: str | Path) -> PreparedReward:
    """Every check that needs no weights: recipe, trl config, model path, pairs file, lengths."""
    import datasets
    from transformers import AutoTokenizer

    recipe: RewardRecipe = load_recipe(recipe_path, RewardRecipe)
    check_model(recipe)
    pairs = read_pairs(recipe)
    args = recipe.training_args()
    tokenizer = reward_model_tokenizer(AutoTokenizer.from_pretrained(recipe.model))
    encoded = encode_pairs(tokenizer, pairs.rows)
    keep = [i for i, (c, r) in enumerate(zip(encoded["chosen_ids"], encoded["rejected_ids"]))
            if args.max_length is None or max(len(c), len(r)) <= args.max_length]
    if not keep:
        longest = min(max(len(c), len(r)) for c, r in zip(encoded["chosen_ids"], encoded["rejected_ids"]))
        raise RecipeError(f"{recipe.where}: trl.max_length: every pair of {pairs.file} is longer than {args.max_length} "
                          f"tokens (the shortest has {longest}); trl drops those, so nothing would train; raise it")
    too_long = len(pairs.rows) - len(keep)
    if too_long:
        log.warning("reward: %d of the %d pairs exceed trl.max_length %s tokens; trl leaves them out", too_long,
                    len(pairs.rows), args.max_length)
    dataset = datasets.Dataset.from_dict({k: [v[i] for i in keep] for k, v in encoded.items()})
    return PreparedReward(recipe, args, tokenizer, pairs, dataset, too_long)


def pairs_accuracy(model_dir: str | Path, rows: list[dict[str, str]], *, device: str, batch_size: int,
                   max_length: int | None) -> dict[str, float]:
    """The saved reward model on the pairs, scored as the judges score (judges.preference.RewardModelScorer, loaded
    from the folder): the share of pairs whose chosen text scores above its rejected one, and the mean margin."""
    scorer = RewardModelScorer(model_dir, device=device, batch_size=batch_size, max_length=max_length or 2048)
    chosen = scorer.rewards([(r["prompt"], r["chosen"]) for r in rows])
    rejected = scorer.rewards([(r["prompt"], r["rejected"]) for r in rows])
    return {"accuracy": sum(c > r for c, r in zip(chosen, rejected)) / len(rows),
            "margin": sum(c - r for c, r in zip(chosen, rejected)) / len(rows)}


def run_reward(catalog: TrainingStore, recipe_path: str | Path, *, resume: bool = False,
               prepared: PreparedReward | None = None) -> dict[str, Any]:
    """Train the recipe's reward model, save it (model and tokenizer) in output_dir, and record the training.
    `prepared`: the recipe's `prepare_reward`, when the caller checked it before making the catalog."""
    prep = prepared or prepare_reward(recipe_path)
    recipe, args = prep.recipe, prep.args
    out = Path(args.output_dir)
    checkpoint = last_checkpoint(str(out), recipe) if resume else None
    out.mkdir(parents=True, exist_ok=True)

    tid = training_id("reward", recipe, prep.pairs.sha256)
    started = now()
    common: dict[str, Any] = {"tid": tid, "kind": "reward", "recipe": recipe, "release": None,
                              "release_sha": prep.pairs.sha256, "prompts_where": f"pairs {prep.pairs.file}"}
    record(catalog, **common, status="running", metrics=None, started_at=started)

    from transformers import AutoModelForSequenceClassification, set_seed
    from trl import RewardTrainer

    # The score head is new (random) on a model saved without one: seed before loading, as trl does when it loads
    # the model itself, so the same seed gives the same reward model.
    set_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(recipe.model, num_labels=1,
                                                               dtype=torch_dtype(recipe.dtype))
    model.config.pad_token_id = prep.tokenizer.pad_token_id
    log.info("reward %s: %s on %d pairs (%s) -> %s", tid, recipe.model, len(prep.dataset), prep.pairs.file, out)
    trainer = RewardTrainer(model=model, args=args, train_dataset=prep.dataset, processing_class=prep.tokenizer)
    try:
        result = trainer.train(resume_from_checkpoint=checkpoint)
        trainer.save_model(str(out))
        prep.tokenizer.save_pretrained(str(out))
        write_model_card(trainer, str(out), **common)
        metrics = final_metrics(trainer, result)
        metrics.update(pairs=len(prep.pairs.rows), pairs_tied=prep.pairs.tied, pairs_too_long=prep.too_long)
        metrics.update(pairs_accuracy(out, prep.pairs.rows, device=str(args.device),
                                      batch_size=args.per_device_eval_batch_size, max_length=args.max_length))
    except BaseException:
        record(catalog, **common, status="failed", metrics=None, started_at=started, finished_at=now())
        raise
    record(catalog, **common, status="finished", metrics=metrics, started_at=started, finished_at=now())
    return {"training_id": tid, "output_dir": str(out.resolve()), "pairs": str(prep.pairs.file),
            "pairs_sha256": prep.pairs.sha256, "aspect": recipe.aspect, "metrics": metrics,
            "log_history": trainer.state.log_history}
