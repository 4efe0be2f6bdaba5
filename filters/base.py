"""What every filter shares: the batch schema, input checks, and the decision frame.

A filter is a pure, vectorised function `(batch, params) -> decisions`. The batch is a polars
DataFrame with one row per generation; the decisions have one row per input row, in the same order:

    generation_id  str    the generation decided on
    filter         str    the filter's registry name
    filter_version str    bumped whenever the filter's logic changes
    passed         bool
    reason         str    "ok", or what failed with the measured value
    value          f64?   the measured value (null where nothing was measured)

A generation whose text is empty, missing, or not valid UTF-8 is dropped by every filter with that
reason (`empty_text`, `invalid_utf8: text`); it never crashes a run.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import polars as pl
from pydantic import BaseModel, ConfigDict, ValidationError

from catalogs.errors import UserError

# Columns a batch may carry, with the value used when a column is absent.
TEXT_COLUMNS = ("generation_id", "prompt_id", "problem", "text", "reasoning", "answer",
                "finish_reason", "domain", "language", "kind")
DEFAULTS: dict[str, str | None] = {
    "prompt_id": None, "problem": "", "finish_reason": None, "domain": "", "language": "en", "kind": "reasoning",
}
REQUIRED = ("generation_id", "text")
INPUT_ERROR = "_input_error"

DECISION_SCHEMA: dict[str, pl.DataType] = {
    "generation_id": pl.String(), "filter": pl.String(), "filter_version": pl.String(),
    "passed": pl.Boolean(), "reason": pl.String(), "value": pl.Float64(),
}

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


class FilterParamsError(UserError, ValueError):
    """Params out of range or unknown: the message names the filter, the field and the fix."""


class FilterParams(BaseModel):
    """Base of every filter's params: unknown keys are errors, values are checked on assignment too."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


P = TypeVar("P", bound=FilterParams)

Kind = Literal["rule", "stateful"]


@dataclass(frozen=True)
class FilterSpec:
    """A filter as its module declares it, once: `FILTER = FilterSpec(NAME, VERSION, "rule", Params, fn=...)`.
    filters/registry.py lists the modules.

    rule: `fn(batch, params) -> decisions`, pure, run in worker processes. stateful: `factory(params)` makes
    an object called batch after batch in catalog order, over every selected generation (decided ones too, so
    its state holds them), that decides the ones without a decision. A stateful filter may have a pure
    `first_pass(params) -> (batch -> features)`, run in the worker processes beside the rule filters, whose
    features are handed to its ordered part: `state(batch, features)` (dedup's MinHash, then its index)."""

    name: str
    version: str
    kind: Kind
    params: type[FilterParams]
    fn: Callable[..., pl.DataFrame] | None = None
    factory: Callable[[Any], Callable[..., pl.DataFrame]] | None = None
    first_pass: Callable[[Any], Callable[[pl.DataFrame], Any]] | None = None
    # Params that name files: a relative path in a recipe file is resolved by catalogs.recipes.resolve_path.
    path_params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.kind == "rule") != (self.fn is not None) or (self.kind == "stateful") != (self.factory is not None):
            raise TypeError(f"filter {self.name!r}: a rule filter gives `fn`, a stateful one `factory`")

    @property
    def stateful(self) -> bool:
        return self.kind == "stateful"


def _decode_binary(col: pl.Series) -> tuple[pl.Series, pl.Series]:
    """Binary -> String; rows that are not valid UTF-8 become null and are flagged."""
    try:
        return col.cast(pl.String), pl.Series([False] * len(col))
    except pl.exceptions.PolarsError:  # polars refuses the whole column when one value is invalid
        out: list[str | None] = []
        bad: list[bool] = []
        for v in col.to_list():
            if v is None:
                out.append(None)
                bad.append(False)
                continue
            try:
                out.append(bytes(v).decode("utf-8"))
                bad.append(False)
            except UnicodeDecodeError:
                out.append(None)
                bad.append(True)
        return pl.Series(out, dtype=pl.String), pl.Series(bad)


def _records_to_frame(records: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    """Python records -> frame; strings that cannot be encoded as UTF-8 (lone surrogates) are flagged."""
    cols: dict[str, list[Any]] = {}
    bad_rows: list[str | None] = []
    keys: list[str] = []
    for r in records:
        for k in r:
            if k not in cols:
                cols[k] = []
                keys.append(k)
    for i, r in enumerate(records):
        err: str | None = None
        for k in keys:
            v = r.get(k)
            if isinstance(v, bytes):
                try:
                    v = v.decode("utf-8")
                except UnicodeDecodeError:
                    err = err or f"invalid_utf8: {k}"
                    v = None
            elif isinstance(v, str):
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError:
                    err = err or f"invalid_utf8: {k}"
                    v = None
            cols[k].append(v)
        bad_rows.append(err)
    frame = pl.DataFrame({k: pl.Series(k, v, dtype=pl.String if k in TEXT_COLUMNS else None, strict=False)
                          for k, v in cols.items()})
    return frame.with_columns(pl.Series(INPUT_ERROR, bad_rows, dtype=pl.String))


# What Python's str.strip() strips (str.isspace), so the polars split strips exactly as catalogs.split does;
# polars' default strip_chars() follows Rust's char::is_whitespace, which differs (U+001C..U+001F).
# Every such character lies below U+3001 (the last is U+3000): scanning that range instead of all 1.1M code
# points saves each process about 0.3 CPU-s at import; tests/filters/test_split_think.py checks the full range.
PY_WHITESPACE = "".join(c for c in map(chr, range(0x3001)) if c.isspace())


def split_think(text: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(reasoning, answer) expressions from a raw generation: catalogs.split.split_reasoning(text, THINK),
    vectorised, with a missing reasoning as "".

    Kept as a polars expression (not a per-row call) because it runs over whole batches; the test
    tests/filters/test_split_think.py checks it against split_reasoning on thousands of generated texts.
    The rules: reasoning runs up to the first `</think>`, after a `<think>` before it if there is one;
    the answer is what follows. Opened but never closed: all reasoning, no answer. No marker at all:
    no reasoning, the whole text is the answer.
    """
    has_close = text.str.contains(THINK_CLOSE, literal=True)
    has_open = text.str.contains(THINK_OPEN, literal=True)
    head = text.str.replace(r"(?s)</think>.*$", "")  # before the first </think>
    head = (pl.when(head.str.contains(THINK_OPEN, literal=True))
            .then(head.str.replace(r"(?s)^.*?<think>", "")).otherwise(head))
    reasoning = (pl.when(has_close).then(head)
                 .when(has_open).then(text.str.replace(r"(?s)^.*?<think>", ""))
                 .otherwise(pl.lit("")))
    answer = (pl.when(has_close).then(text.str.replace(r"(?s)^.*?</think>", ""))
              .when(has_open).then(pl.lit(""))
              .otherwise(text))
    return reasoning.str.strip_chars(PY_WHITESPACE), answer.str.strip_chars(PY_WHITESPACE)


def prepare_batch(data: pl.DataFrame | Sequence[Mapping[str, Any]] | Any) -> pl.DataFrame:
    """Normalise a batch: String columns, defaults for absent optional columns, input errors flagged.

    Accepts a polars DataFrame, a pyarrow Table, or a list of dicts. `reasoning` and `answer` are
    derived from `text` when absent, as catalogs.split.split_reasoning does with `<think>` markers. The returned frame has an extra
    `_input_error` column: null, `empty_text`, or `invalid_utf8: <column>`.
    """
    if isinstance(data, pl.DataFrame):
        df = data
    elif isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        df = _records_to_frame(data)
    else:
        try:
            df = pl.from_arrow(data)  # type: ignore[assignment]
        except Exception as e:
            raise TypeError(f"a filter batch must be a polars DataFrame, a pyarrow Table or a list of dicts, "
                            f"not {type(data).__name__}") from e
        assert isinstance(df, pl.DataFrame)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ValueError(f"filter batch is missing column(s) {missing}; it has {df.columns}. "
                         f"Every batch needs {list(REQUIRED)} (the others default: {DEFAULTS}).")
    err = df[INPUT_ERROR] if INPUT_ERROR in df.columns else pl.Series(INPUT_ERROR, [None] * df.height, dtype=pl.String)
    cols: dict[str, pl.Series] = {}
    for c in TEXT_COLUMNS:
        if c not in df.columns:
            continue
        s = df[c]
        if s.dtype == pl.Binary:
            s, bad = _decode_binary(s)
            err = pl.select(pl.when(err.is_null() & bad).then(pl.lit(f"invalid_utf8: {c}")).otherwise(err)).to_series()
        elif s.dtype != pl.String:
            s = s.cast(pl.String)
        cols[c] = s.alias(c)
    df = df.with_columns(list(cols.values()))
    df = df.with_columns([pl.lit(v, dtype=pl.String).alias(c) for c, v in DEFAULTS.items() if c not in df.columns])
    if "reasoning" not in df.columns or "answer" not in df.columns:
        reasoning, answer = split_think(pl.col("text").fill_null(""))
        df = df.with_columns(
            [e.alias(c) for c, e in (("reasoning", reasoning), ("answer", answer)) if c not in df.columns])
    df = df.with_columns(pl.col("reasoning", "answer", "problem").fill_null(""),
                         pl.col("language").fill_null("en"), pl.col("domain").fill_null(""))
    # all whitespace: what `strip_chars() == ""` tests (Rust's char::is_whitespace and the regex's \s are both
    # Unicode's White_Space), without a stripped copy of every text for each filter
    empty = pl.col("text").is_null() | pl.col("text").str.contains(r"^\s*$")
    err_expr = pl.when(err.is_not_null()).then(pl.lit(err)).when(empty).then(pl.lit("empty_text")).otherwise(None)
    return df.with_columns(err_expr.alias(INPUT_ERROR))


def decisions(generation_id: pl.Series | pl.Expr, name: str, version: str, passed: pl.Expr | pl.Series,
              reason: pl.Expr | pl.Series, value: pl.Expr | pl.Series | None = None,
              frame: pl.DataFrame | None = None) -> pl.DataFrame:
    """Build the decision frame (evaluated over `frame` when the arguments are expressions)."""
    exprs = [
        (generation_id if isinstance(generation_id, pl.Expr) else pl.lit(generation_id)).alias("generation_id"),
        pl.lit(name).alias("filter"),
        pl.lit(version).alias("filter_version"),
        (passed if isinstance(passed, pl.Expr) else pl.lit(passed)).alias("passed"),
        (reason if isinstance(reason, pl.Expr) else pl.lit(reason)).alias("reason"),
        (pl.lit(None) if value is None else (value if isinstance(value, pl.Expr) else pl.lit(value)))
        .cast(pl.Float64).alias("value"),
    ]
    base = frame if frame is not None else pl.DataFrame()
    return base.select(exprs).cast(DECISION_SCHEMA)  # type: ignore[arg-type]


def empty_decisions() -> pl.DataFrame:
    return pl.DataFrame(schema=DECISION_SCHEMA)


def validate_params(name: str, model: type[P], params: P | Mapping[str, Any] | None) -> P:
    """Params for filter `name` from a dict, a model or None (the defaults); errors name the field."""
    if params is None:
        params = {}
    if isinstance(params, model):
        return params
    if isinstance(params, BaseModel):
        raise TypeError(f"filter {name!r} takes {model.__name__}, not {type(params).__name__}")
    try:
        return model(**dict(params))
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or '(params)'}: {err['msg']}"
                             f" (got {err.get('input')!r})" for err in e.errors())
        raise FilterParamsError(f"bad params for filter {name!r}: {problems}. "
                         f"Fix them in the recipe's filters.{name} section.") from None


def batch_filter(name: str, version: str, model: type[P]) -> Callable[[Callable[[pl.DataFrame, P], pl.DataFrame]],
                                                      Callable[..., pl.DataFrame]]:
    """Wrap a filter body: prepare the batch, drop bad input with its reason, keep row order.

    The body sees only rows with valid, non-empty text, already prepared, and returns the decision
    columns for them in order (as built by `decisions`).
    """

    def wrap(body: Callable[[pl.DataFrame, P], pl.DataFrame]) -> Callable[..., pl.DataFrame]:
        @functools.wraps(body)
        def run(batch: Any, params: P | Mapping[str, Any] | None = None) -> pl.DataFrame:
            p = validate_params(name, model, params)
            df = prepare_batch(batch)
            return apply_with_input_errors(df, name, version, lambda good: body(good, p))

        run.filter_name = name  # type: ignore[attr-defined]
        run.filter_version = version  # type: ignore[attr-defined]
        return run

    return wrap


def apply_with_input_errors(df: pl.DataFrame, name: str, version: str,
                            body: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
    """Run `body` over the rows without input errors; rows with one fail with it; order kept."""
    if df.height == 0:
        return empty_decisions()
    bad = df[INPUT_ERROR].is_not_null()
    if not bad.any():
        out = body(df.drop(INPUT_ERROR))
        _check_shape(out, df.height, name)
        return out
    idx = pl.Series("_i", range(df.height), dtype=pl.UInt32)
    good_df = df.filter(~bad).drop(INPUT_ERROR)
    parts = []
    if good_df.height:
        out = body(good_df)
        _check_shape(out, good_df.height, name)
        parts.append(out.with_columns(idx.filter(~bad)))
    bad_df = df.filter(bad)
    parts.append(decisions(pl.col("generation_id"), name, version, pl.lit(False), pl.col(INPUT_ERROR),
                           None, bad_df).with_columns(idx.filter(bad)))
    return pl.concat(parts).sort("_i").drop("_i")


def _check_shape(out: pl.DataFrame, n: int, name: str) -> None:
    if out.height != n:  # a bug in a filter, not in the input
        raise RuntimeError(f"filter {name!r} returned {out.height} decisions for {n} rows")
