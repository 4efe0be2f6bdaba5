"""Recipes of every stage are YAML files validated by pydantic models; this is the one loader.

`load_model(path, Model)` reads and validates; every error names the file, the line, the key and the
fix (with a "did you mean" for unknown keys). Stage packages define their models; this module knows
none of them.
"""
from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, ValidationInfo
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from .errors import RecipeError


class Strict(BaseModel):
    """Base of every recipe model: an unknown key is an error."""

    model_config = ConfigDict(extra="forbid")


def _loc_str(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(loc: tuple[Any, ...], root: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model that holds the key at `loc` (loc excludes the key itself)."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        ann = model.model_fields[part].annotation
        model = _unwrap_model(ann)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap_model(ann: Any) -> Any:
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    for arg in getattr(ann, "__args__", ()) or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def _line_index(text: str) -> dict[tuple[Any, ...], int]:
    """Map key paths to 1-based line numbers, from the YAML node tree."""
    lines: dict[tuple[Any, ...], int] = {}
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return lines

    def walk(node: Any, path: tuple[Any, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = key_node.value
                lines[path + (key,)] = key_node.start_mark.line + 1
                walk(value_node, path + (key,))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[path + (i,)] = item.start_mark.line + 1
                walk(item, path + (i,))

    walk(root, ())
    return lines


def _line_for(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None


def key_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the key (or list item) at `loc` in a YAML text, or of its nearest parent."""
    return _line_for(_line_index(text), loc)


def _describe(err: ErrorDetails, root: type[BaseModel]) -> str:
    loc = tuple(err["loc"])
    typ = err["type"]
    key = _loc_str(loc)
    if typ == "extra_forbidden":
        holder = _model_at(loc[:-1], root)
        known = sorted(holder.model_fields) if holder else list(err.get("ctx", {}).get("allowed", ()))
        known = [k for k in known if k != "source_path"]
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"remove it; allowed keys here: {', '.join(known)}"
        return f"{key}: unknown key; {hint}"
    if typ == "missing":
        return f"{key}: required key is missing; add it"
    msg = err["msg"]
    msg = msg.removeprefix("Value error, ")
    got = err.get("input")
    got_s = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
    fix = "fix the value"
    if typ.endswith(("_type", "_parsing")):
        fix = "give a value of the right type"
    elif typ == "literal_error":
        fix = "use one of the allowed values"
    return f"{key}: {msg}{got_s}; {fix}" if key else f"{msg}"


M = TypeVar("M", bound=BaseModel)


def parse_model(data: Any, model: type[M], source: str | Path = "<recipe>", text: str | None = None,
                *, what: str = "recipe", recipe_file: Path | None = None) -> M:
    """Validate a parsed YAML mapping against any recipe model; errors name the file, line, key and fix.
    `recipe_file`: the file it was read from, where validators read relative paths from (see `recipe_file_of`)."""
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a {what} must be a YAML mapping of keys to values; got {type(data).__name__}")
    try:
        return model.model_validate(data, context={"recipe_file": recipe_file} if recipe_file is not None else None)
    except ValidationError as exc:
        lines = _line_index(text) if text else {}
        problems = []
        for err in exc.errors():
            line = _line_for(lines, tuple(err["loc"]))
            where = f"{source}:{line}" if line else str(source)
            problems.append(f"{where}: {_describe(err, model)}")
        raise RecipeError(f"invalid {what}\n  " + "\n  ".join(problems)) from None


def read_yaml(path: Path, what: str = "recipe") -> tuple[Any, str]:
    if not path.is_file():
        raise RecipeError(f"{path}: {what} file not found; check the path")
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.safe_load(text), text
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise RecipeError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None


def load_model(path: str | Path, model: type[M], *, what: str = "recipe") -> M:
    """Read and validate a YAML recipe of any stage (judge, filter, release) with the same errors."""
    path = Path(path)
    data, text = read_yaml(path, what)
    return parse_model(data, model, path, text, what=what, recipe_file=path)


def resolve_path(path: str | os.PathLike[str], recipe_file: str | os.PathLike[str] | None) -> Path:
    """The one rule for a relative path written in a recipe (a model folder, a template, a benchmark file).

    `~` expands and an absolute path stays as it is. A relative path is taken beside the recipe if it exists
    there, else from the working directory if it exists there, else beside the recipe (so that a "not found"
    error names the place the recipe means). The result is absolute where the recipe's folder is known, so
    that ids and hashes made from it do not depend on where `r1f` was started."""
    p = Path(os.path.expanduser(os.fspath(path)))
    if p.is_absolute() or recipe_file is None:
        return p
    beside = Path(recipe_file).parent / p
    return (p if p.exists() and not beside.exists() else beside).resolve()


def validate_nested(model: type[M], data: Any) -> M:
    """Validate `data` against `model` from inside a validator of the recipe model that holds it, where the model
    depends on another field (a judge's or a filter's params, on its name). The errors keep their keys, so the
    recipe error names the key's own line, and an unknown key lists the keys `model` allows."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        allowed = sorted(model.model_fields)
        errors = [InitErrorDetails(type=PydanticCustomError(e["type"], e["msg"], {"allowed": allowed})
                                   if e["type"] == "extra_forbidden" else e["type"],
                                   loc=e["loc"], input=e["input"], ctx=e.get("ctx", {}))
                  for e in exc.errors()]
        raise ValidationError.from_exception_data(exc.title, errors) from None


def recipe_file_of(info: ValidationInfo) -> Path | None:
    """Inside a validator: the recipe file being loaded (by `load_model`), or None for a recipe built in code."""
    return info.context.get("recipe_file") if isinstance(info.context, dict) else None


def resolve_paths(params: dict[str, Any], keys: tuple[str, ...], recipe_file: Path | None) -> dict[str, Any]:
    """`params` with the paths under `keys` (a path or a list of them) resolved by `resolve_path`; as given for
    a recipe built in code."""
    if recipe_file is None or not keys:
        return params

    def resolve(p: Any) -> Any:
        return str(resolve_path(p, recipe_file)) if isinstance(p, str) else p

    return {k: ([resolve(p) for p in v] if isinstance(v, list) else resolve(v)) if k in keys else v
            for k, v in params.items()}


