"""Named, versioned prompt templates (files in factory/templates/), and rendering a catalog prompt.

A template file is YAML: name, version, style (r1_zero | cold_start | reasoning | non_reasoning),
mode (plain: one raw prompt for base models; chat: messages through the model's chat template),
the placeholders it must contain, its reasoning markers, and its text.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field

from catalogs.errors import RecipeError, UserError
from catalogs.recipes import Strict, load_model
from catalogs.split import Markers

TEMPLATE_DIR = Path(__file__).parent / "templates"
DEFAULT_EXAMPLES = Path(__file__).parent / "examples" / "cold_start_examples.jsonl"
Style = Literal["r1_zero", "cold_start", "reasoning", "non_reasoning"]
STYLES: tuple[str, ...] = get_args(Style)
_STYLE_NEEDS = {"r1_zero": ("prompt",), "cold_start": ("prompt", "examples"), "reasoning": ("prompt",),
                "non_reasoning": ("prompt",)}
_PLACEHOLDER = re.compile(r"\{(prompt|examples|problem|reasoning|summary)\}")


class TemplateError(UserError, ValueError):
    """A template that cannot be used. The message names the file, the field and the fix."""


@dataclass(frozen=True)
class Rendered:
    messages: list[dict[str, str]]
    # Plain-mode templates (base models): the exact text to complete, without a chat template.
    raw_prompt: str | None = None
    # False where the template asked for no chain of thought (trivial non-reasoning queries).
    cot: bool = True


@dataclass(frozen=True)
class Template:
    name: str
    version: str
    style: str
    mode: str
    markers: Markers
    user: str
    system: str | None = None
    description: str = ""
    required_placeholders: tuple[str, ...] = ("prompt",)
    example: str | None = None
    boxed_instruction: str | None = None
    trivial_system: str | None = None
    trivial_user: str | None = None
    path: Path | None = None
    # Options from the recipe (examples, trivial rule, boxed policy).
    examples: tuple[dict[str, str], ...] = ()
    boxed: str = "math"
    trivial_patterns: tuple[str, ...] = ()
    trivial_max_chars: int = 0
    _compiled: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)

    @property
    def fingerprint(self) -> str:
        """A hash of everything that changes what the template renders."""
        payload = {
            k: getattr(self, k)
            for k in ("name", "version", "style", "mode", "user", "system", "example", "boxed_instruction",
                      "trivial_system", "trivial_user", "examples", "boxed", "trivial_patterns",
                      "trivial_max_chars")
        }
        payload["markers"] = self.markers.__dict__
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=list).encode()).hexdigest()[:8]

    @property
    def run_version(self) -> str:
        """The version recorded with a run: the file's version plus the content fingerprint, so editing
        a template or its examples without bumping the version still starts a new run."""
        return f"{self.version}+{self.fingerprint}"

    def is_trivial(self, query: str) -> bool:
        q = query.strip()
        if self.trivial_max_chars and len(q) <= self.trivial_max_chars:
            return True
        return any(p.fullmatch(q) for p in self._compiled)

    def render(self, prompt: dict[str, Any]) -> Rendered:
        """Render a catalog prompt row (needs `problem`; uses `messages` and `domain` where present)."""
        problem = prompt.get("problem")
        messages = _messages_of(prompt)
        if problem is None:
            users = [m for m in messages if m.get("role") == "user"]
            problem = users[-1]["content"] if users else ""
        if self.style == "r1_zero":
            text = fill(self.user, prompt=problem)
            return Rendered([{"role": "user", "content": text}], raw_prompt=text if self.mode == "plain" else None)
        if self.style == "cold_start":
            user = fill(self.user, prompt=problem, examples=self.examples_block())
            out = ([{"role": "system", "content": self.system}] if self.system else []) + [
                {"role": "user", "content": user}
            ]
            return self._finish(out)
        if self.style == "reasoning":
            content = fill(self.user, prompt=problem)
            wants_box = self.boxed == "always" or (
                self.boxed == "math" and str(prompt.get("domain") or "").lower() == "math"
            )
            if wants_box and self.boxed_instruction and "\\boxed" not in content:
                content = f"{content}\n{self.boxed_instruction}"
            out = _replace_last_user(messages, problem, content)
            if self.system and not any(m["role"] == "system" for m in out):
                out = [{"role": "system", "content": self.system}] + out
            return self._finish(out)
        if self.style == "non_reasoning":
            trivial = self.is_trivial(problem)
            system = (self.trivial_system if trivial else self.system)
            user_t = (self.trivial_user if trivial and self.trivial_user else self.user)
            out = _replace_last_user(messages, problem, fill(user_t, prompt=problem))
            out = [m for m in out if m["role"] != "system" or not system]
            if system:
                out = [{"role": "system", "content": system}] + out
            return self._finish(out, cot=not trivial)
        raise TemplateError(f"template {self.name}: unknown style {self.style!r}; use one of {', '.join(STYLES)}")

    def _finish(self, messages: list[dict[str, str]], cot: bool = True) -> Rendered:
        if self.mode == "plain":
            return Rendered(messages, raw_prompt="\n\n".join(m["content"] for m in messages), cot=cot)
        return Rendered(messages, cot=cot)

    def examples_block(self) -> str:
        if not self.example:
            return ""
        return "\n\n".join(fill(self.example, **ex) for ex in self.examples)


def fill(template: str, **values: str) -> str:
    """Replace `{name}` placeholders we know, leaving every other brace alone (LaTeX, JSON, code)."""
    return _PLACEHOLDER.sub(lambda m: str(values.get(m.group(1), m.group(0))), template)


def _messages_of(prompt: dict[str, Any]) -> list[dict[str, str]]:
    msgs = prompt.get("messages")
    if isinstance(msgs, str):
        msgs = json.loads(msgs)
    if not msgs:
        return [{"role": "user", "content": prompt.get("problem") or ""}]
    return [{"role": m["role"], "content": m["content"]} for m in msgs]


def _replace_last_user(messages: list[dict[str, str]], problem: str, content: str) -> list[dict[str, str]]:
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m["role"] == "user":
            m["content"] = content
            return out
    return out + [{"role": "user", "content": content}]


def available_templates() -> list[str]:
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.yaml"))


class TemplateFile(Strict):
    """What a template file may hold; read with the one recipe loader, so errors name the file and line."""

    name: str = Field(min_length=1)
    version: str | int | float
    style: Style
    mode: Literal["chat", "plain"] = "chat"
    description: str = ""
    required_placeholders: list[str] | None = None
    markers: dict[str, Any] | None = None
    system: str | None = None
    user: str = Field(min_length=1)
    example: str | None = None
    boxed_instruction: str | None = None
    trivial_system: str | None = None
    trivial_user: str | None = None


def read_template_file(path: Path) -> dict[str, Any]:
    try:
        return load_model(path, TemplateFile, what="template").model_dump()
    except RecipeError as exc:
        raise TemplateError(str(exc).replace("check the path", "check template.file in the recipe")) from None


def _placeholders(text: str | None) -> set[str]:
    return set(_PLACEHOLDER.findall(text or ""))


def load_examples(path: Path) -> tuple[dict[str, str], ...]:
    if not path.is_file():
        raise TemplateError(f"template.examples_file: {path} does not exist; give a JSONL file of "
                            "{{problem, reasoning, summary}} objects")
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise TemplateError(f"{path}:{i}: not valid JSON ({exc}); one JSON object per line") from None
        missing = [k for k in ("problem", "reasoning", "summary") if not isinstance(row.get(k), str)]
        if missing:
            raise TemplateError(f"{path}:{i}: missing string field(s) {missing}; each example needs "
                                "problem, reasoning and summary")
        out.append({k: row[k] for k in ("problem", "reasoning", "summary")})
    if not out:
        raise TemplateError(f"{path}: no examples; add at least one JSON line")
    return tuple(out)


def load_template(
    name: str = "reasoning",
    file: str | Path | None = None,
    *,
    version: str | None = None,
    examples_file: str | Path | None = None,
    num_examples: int | None = None,
    system: str | None = None,
    boxed: str = "math",
    trivial_patterns: list[str] | tuple[str, ...] = (),
    trivial_max_chars: int = 0,
) -> Template:
    """Load a built-in template by name, or a template file; check its placeholders and apply options."""
    if file is not None:
        path = Path(file)
    else:
        path = TEMPLATE_DIR / f"{name}.yaml"
        if not path.is_file():
            raise TemplateError(
                f"template.name: no template named {name!r}; use one of {', '.join(available_templates())} "
                "or give template.file"
            )
    data = read_template_file(path)
    if version is not None and str(data["version"]) != str(version):
        raise TemplateError(
            f"template.version: the recipe pins version {version!r} but {path} is version {data['version']!r}; "
            "update the recipe's template.version or use the matching file"
        )
    required = tuple(data.get("required_placeholders") or ("prompt",))
    # Whatever the file declares, its style needs these to render at all.
    needed = list(dict.fromkeys([*_STYLE_NEEDS[data["style"]], *required]))
    present = _placeholders(data.get("user"))
    missing = [p for p in needed if p not in present]
    if missing:
        raise TemplateError(
            f"{path}: user: the template lacks the required placeholder(s) "
            f"{', '.join('{' + m + '}' for m in missing)}; add them where the prompt text goes"
        )
    if data["style"] == "cold_start":
        ex_missing = [p for p in ("problem", "reasoning", "summary") if p not in _placeholders(data.get("example"))]
        if ex_missing:
            raise TemplateError(f"{path}: example: lacks placeholder(s) {ex_missing}; add them")
    examples: tuple[dict[str, str], ...] = ()
    if data["style"] == "cold_start":
        examples = load_examples(Path(examples_file) if examples_file else DEFAULT_EXAMPLES)
        if num_examples:
            examples = examples[:num_examples]
    try:
        markers = Markers.from_dict(data.get("markers"))
    except ValueError as exc:
        raise TemplateError(f"{path}: {exc}") from None
    patterns = tuple(trivial_patterns)
    return Template(
        name=str(data["name"]),
        version=str(data["version"]),
        style=data["style"],
        mode=data.get("mode", "chat"),
        markers=markers,
        user=data["user"],
        system=system if system is not None else data.get("system"),
        description=data.get("description", ""),
        required_placeholders=required,
        example=data.get("example"),
        boxed_instruction=data.get("boxed_instruction"),
        trivial_system=data.get("trivial_system"),
        trivial_user=data.get("trivial_user"),
        path=path,
        examples=examples,
        boxed=boxed,
        trivial_patterns=patterns,
        trivial_max_chars=trivial_max_chars,
        _compiled=tuple(re.compile(p, re.IGNORECASE) for p in patterns),
    )


def template_from_recipe(recipe: Any) -> Template:
    """The template a recipe asks for, with its options; errors name the recipe file."""
    t = recipe.template
    try:
        return load_template(
            t.name,
            recipe.resolve(t.file),
            version=t.version,
            examples_file=recipe.resolve(t.examples_file),
            num_examples=t.num_examples,
            system=t.system,
            boxed=t.boxed,
            trivial_patterns=t.trivial.patterns,
            trivial_max_chars=t.trivial.max_chars,
        )
    except TemplateError as exc:
        where = recipe.source_path or "<recipe>"
        raise TemplateError(f"{where}: {exc}") from None
