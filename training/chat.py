"""The chat template training uses, and the end-of-turn token a trained model stops at.

Loss on the assistant turn only needs `{% generation %}…{% endgeneration %}` around the assistant content
and its end-of-turn token (trl's `assistant_only_loss`). A model's own template is kept when it has the
markers or trl knows how to add them; a model without a template gets ChatML (or Llama 3's, by its
vocabulary); anything else is an error naming the recipe key to set. The end-of-turn token becomes the
tokenizer's EOS and joins the generation config's EOS ids, so a base model learns to stop and stops.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from catalogs.errors import RecipeError

TEMPLATE_DIR = Path(__file__).parent / "templates"
BUILTIN = {"chatml": "<|im_end|>", "llama3": "<|eot_id|>"}


def _has_markers(template: str) -> bool:
    from trl.chat_template_utils import has_generation_markers

    return has_generation_markers(template)


def _builtin_for_vocab(tokenizer: Any) -> str | None:
    vocab = tokenizer.get_vocab()
    if "<|im_start|>" in vocab and "<|im_end|>" in vocab:
        return "chatml"
    if "<|start_header_id|>" in vocab and "<|eot_id|>" in vocab:
        return "llama3"
    return None


def end_of_turn(template: str, tokenizer: Any) -> str | None:
    """The special token the template closes an assistant turn with (the one a trained model stops at)."""
    for token in BUILTIN.values():
        if token in template and token in tokenizer.get_vocab():
            return token
    return tokenizer.eos_token


def resolve_chat_template(tokenizer: Any, setting: str | None, recipe: Any) -> tuple[str, str | None]:
    """(template text with generation markers, end-of-turn token); raises before any weight loads."""
    where = f"{recipe.where}: chat_template"
    if setting in BUILTIN:
        template = (TEMPLATE_DIR / f"{setting}.jinja").read_text()
        if BUILTIN[setting] not in tokenizer.get_vocab():
            raise RecipeError(f"{where}: {setting} needs the token {BUILTIN[setting]!r}, which the tokenizer of "
                              f"{recipe.model} lacks; choose {'llama3' if setting == 'chatml' else 'chatml'} "
                              f"or give a template file")
    elif setting is not None:
        path = recipe.resolve(setting)
        if not path.is_file():
            raise RecipeError(f"{where}: {setting!r} is neither a built-in template ({', '.join(BUILTIN)}) nor "
                              f"a file; give one of those or the path of a .jinja file")
        template = path.read_text(encoding="utf-8")
        if not _has_markers(template):
            raise RecipeError(f"{where}: {path} has no {{% generation %}}…{{% endgeneration %}} marker around the "
                              f"assistant content, so the loss cannot be limited to the assistant turn; add it "
                              f"(see training/templates/chatml.jinja), or set chat_template: chatml")
    else:
        own = getattr(tokenizer, "chat_template", None)
        if isinstance(own, dict):
            own = own.get("default")
        if not own:
            name = _builtin_for_vocab(tokenizer)
            if name is None:
                raise RecipeError(f"{where}: {recipe.model} has no chat template and its vocabulary has neither "
                                  f"ChatML nor Llama 3 turn tokens; give a template file with {{% generation %}} "
                                  f"markers")
            template = (TEMPLATE_DIR / f"{name}.jinja").read_text()
        elif _has_markers(own):
            template = own
        else:
            from trl.chat_template_utils import get_training_chat_template

            try:
                patched = get_training_chat_template(tokenizer)
            except ValueError:
                suggestion = _builtin_for_vocab(tokenizer) or "a template file"
                raise RecipeError(
                    f"{where}: the chat template of {recipe.model} has no {{% generation %}} marker and trl does "
                    f"not know how to add one, so the loss cannot be limited to the assistant turn; set "
                    f"chat_template: {suggestion} in the recipe, or give a .jinja file with the markers") from None
            assert patched is not None  # trl's None means "has the markers already", which `own` has not
            template = patched
    return template, end_of_turn(template, tokenizer)


def apply_template(tokenizer: Any, template: str, eot: str | None) -> None:
    """Set the template and make its end-of-turn token the tokenizer's EOS."""
    tokenizer.chat_template = template
    if eot is not None:
        tokenizer.eos_token = eot
    if tokenizer.pad_token is None or tokenizer.pad_token == tokenizer.eos_token:
        # Padding with EOS would mask EOS out of the labels in some collators; use another special token.
        for candidate in ("<|endoftext|>", "<|finetune_right_pad_id|>", "<pad>"):
            if candidate in tokenizer.get_vocab() and candidate != eot:
                tokenizer.pad_token = candidate
                break


def stop_ids(tokenizer: Any, model_config: Any, eot: str | None) -> list[int]:
    """EOS ids for the saved generation config: the end-of-turn token first, then what the model had."""
    ids: list[int] = []
    if eot is not None:
        ids.append(int(tokenizer.convert_tokens_to_ids(eot)))
    existing = getattr(model_config, "eos_token_id", None)
    for i in existing if isinstance(existing, list) else [existing]:
        if i is not None and int(i) not in ids:
            ids.append(int(i))
    return ids
