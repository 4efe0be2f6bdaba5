"""One prompt renderer: the factory's length check counts exactly the tokens of the prompt the engine receives,
`backend.chat_template_kwargs` included, on the transformers backend and on the shared vLLM engine."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from backends.render import count_prompt_tokens, render_prompt
from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest
from catalogs.query import sql
from factory.generate import check_prompt_lengths, generate_from_recipe, prepare_recipe
from factory.templates import template_from_recipe

# The tiny model's ChatML template with a thinking switch, as Qwen3 has one: `enable_thinking: false` closes an
# empty think block after the generation prompt, so the kwargs change the prompt by a few tokens.
THINKING_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
    "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
    "{%- endif %}"
)
PROBLEMS = ["What is 1 + 1?", "Add 17 and 25, then double the result.", "hello"]


def _catalog(tmp_path: Path) -> Catalog:
    src = tmp_path / "prompts.jsonl"
    src.write_text("".join(json.dumps({"problem": p, "domain": "math"}) + "\n" for p in PROBLEMS))
    cat = Catalog(tmp_path / "catalog")
    ingest(cat, src, IngestOptions(source="render"))
    return cat


@pytest.fixture(scope="module")
def thinking_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model, its tokenizer saved with THINKING_TEMPLATE."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("thinking") / "model"
    shutil.copytree(tiny_model_dir, out)
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = THINKING_TEMPLATE
    tok.save_pretrained(out)
    return out


def _engine_prompt_tokens(cat: Catalog) -> dict[str, int]:
    cols, rows = sql(cat, "SELECT p.problem, g.prompt_tokens FROM generation_meta g JOIN prompts p USING (prompt_id)")
    return {r[0]: int(r[1]) for r in rows}


def _counted(recipe_path: Path, cat: Catalog, backend: Any = None) -> dict[str, int]:
    recipe = prepare_recipe(recipe_path)
    template = template_from_recipe(recipe)
    prompts = cat.prompts().to_dicts()
    counts = check_prompt_lengths(recipe, template, prompts, backend)
    assert counts is not None
    return {p["problem"]: n for p, n in zip(prompts, counts)}


def test_length_check_counts_the_transformers_engines_prompt(tmp_path: Path, thinking_model: Path) -> None:
    cat = _catalog(tmp_path)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"backend: {{name: transformers, model: {thinking_model}, "
                      "chat_template_kwargs: {enable_thinking: false}}\n"
                      "template: {name: reasoning, boxed: never}\n"
                      "sampling: {max_tokens: 4, temperature: 0}\n")
    counted = _counted(recipe, cat)
    generate_from_recipe(recipe, cat, progress=False)
    assert _engine_prompt_tokens(cat) == counted

    # The kwargs made the difference: without them the same prompts are shorter by the closed think block.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(thinking_model)
    messages = [{"role": "user", "content": PROBLEMS[0]}]
    think = len(tok.encode("<think>\n\n</think>\n\n", add_special_tokens=False))
    assert think > 0
    plain = count_prompt_tokens(tok, messages)
    with_kwargs = count_prompt_tokens(tok, messages, chat_template_kwargs={"enable_thinking": False})
    assert with_kwargs == plain + think
    assert render_prompt(tok, messages, chat_template_kwargs={"enable_thinking": False}).endswith("</think>\n\n")
    # A run with other template kwargs is another run (its prompts differ).
    runs = sql(cat, "SELECT sampling FROM runs")[1]
    assert len(runs) == 1 and "enable_thinking" in str(runs[0][0])


def test_length_check_counts_the_vllm_engines_prompt(tmp_path: Path, tiny_model_dir: Path, vllm_llm: Any) -> None:
    """The shared engine keeps the tiny model's template; the kwargs reach it as they reach the check (here the
    template itself, a keyword argument of apply_chat_template, so one engine serves both templates)."""
    from backends.vllm_backend import VLLMBackend

    cat = _catalog(tmp_path)
    recipe = tmp_path / "recipe.yaml"
    kwargs = json.dumps({"chat_template": THINKING_TEMPLATE, "enable_thinking": False})
    recipe.write_text(f"backend: {{name: vllm, model: {tiny_model_dir}, chat_template_kwargs: {kwargs}}}\n"
                      "template: {name: reasoning, boxed: never}\n"
                      "sampling: {max_tokens: 4, temperature: 0}\n")
    backend = VLLMBackend(llm=vllm_llm)
    counted = _counted(recipe, cat, backend)
    generate_from_recipe(recipe, cat, backend=backend, progress=False)
    assert _engine_prompt_tokens(cat) == counted
    plain = count_prompt_tokens(backend.tokenizer, [{"role": "user", "content": PROBLEMS[0]}])
    assert counted[PROBLEMS[0]] > plain  # the think block is in what the engine received
