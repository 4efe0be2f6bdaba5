"""`r1f ingest`: prompts (or generations made elsewhere) from JSONL, JSON, Parquet, a saved `datasets` folder, or a
dataset on the Hub (`hf://datasets/ORG/NAME`).

Streaming and all-or-nothing: records are validated and written to a private staging folder batch by
batch, with no lock held; one short transaction at the end publishes everything. Any bad record
aborts the ingest before that transaction, and the catalog is exactly as it was.
"""
from __future__ import annotations

import ast
import gzip
import hashlib
import io
import json
import re
import shutil
import time
import uuid
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from .choices import DOMAIN as CHOICE_DOMAIN
from .choices import LETTERS, ChoiceError, multiple_choice
from .ids import (
    canonical_json,
    generation_id,
    normalise_messages,
    prompt_id,
    run_id,
    source_id,
)
from .store import Catalog, CatalogError, StagedBatch, code_version, one_row, prompt_schema

if TYPE_CHECKING:
    import duckdb

PROMPT_FIELDS = ("messages", "prompt", "problem")
RESPONSE_FIELDS = ("response", "completion", "content", "output", "generation")
REASONING_FIELDS = ("reasoning_content", "reasoning")
PROMPT_KNOWN = {"answer", "tests", "kind", "domain", "language", *PROMPT_FIELDS}
# With --generations these are the response; without, they are kept as the prompt's metadata.
GENERATION_KNOWN = {"finish_reason", "prompt_tokens", "completion_tokens", "generation_id", *RESPONSE_FIELDS,
                    *REASONING_FIELDS}
# The columns of a release r1-factory published (releases/): read back with --generations, as prompt and response.
PUBLISHED_COLUMNS = {"generation_id", "prompt", "completion", "reasoning", "answer", "reference"}
HUB_PREFIXES = ("hf://datasets/", "hf:/datasets/")  # the second: what pathlib makes of the first
KINDS = ("reasoning", "non_reasoning")
ROLES = ("system", "user", "assistant", "tool")
LANG_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
MAX_ERRORS = 20
BATCH_ROWS = 2000
BATCH_BYTES = 64 << 20


class IngestError(CatalogError):
    def __init__(self, path: Path, errors: list[str]):
        self.errors = errors
        more = "" if len(errors) < MAX_ERRORS else f"\n  (stopped after {MAX_ERRORS} errors)"
        super().__init__(f"{path}: {len(errors)} bad record(s); nothing was ingested, the catalog is unchanged.\n  "
                         + "\n  ".join(errors) + more)


class RecordError(Exception):
    pass


@dataclass
class IngestOptions:
    source: str
    generations: bool = False
    model: str | None = None
    rename: dict[str, str] = field(default_factory=dict)
    kind: str | None = None
    domain: str | None = None
    language: str | None = None
    split: str | None = None
    config: str | None = None  # a Hub dataset's config (subset)
    revision: str | None = None  # a Hub dataset's branch, tag or commit
    max_record_bytes: int = 16 << 20
    # Multiple choice (GPQA-style): the field holding a list of options, or one field per option; see choices.py.
    choices: tuple[str, ...] = ()
    shuffle_choices: bool = False


@dataclass
class IngestReport:
    source: str
    file: str
    format: str
    rows_read: int = 0
    prompts_added: int = 0
    prompts_already_present: int = 0
    generations_added: int = 0
    generations_already_present: int = 0
    run_id: str | None = None
    ingest_id: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- readers
def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "state.json").exists() or (path / "dataset_dict.json").exists():
            return "hf"
        raise CatalogError(f"{path} is a folder but not a saved `datasets` dataset (no dataset_info.json or "
                           f"dataset_dict.json); give a JSONL/JSON/Parquet file or a folder made by save_to_disk.")
    name = path.name.lower()
    if name.endswith((".jsonl", ".ndjson", ".jsonl.gz", ".ndjson.gz")):
        return "jsonl"
    if name.endswith((".json", ".json.gz")):
        return "json"
    if name.endswith(".parquet"):
        return "parquet"
    raise CatalogError(f"{path}: unknown file type; r1f ingest reads .jsonl, .json, .parquet (optionally .gz for "
                       f"JSON) or a folder saved with datasets' save_to_disk.")


def _open_binary(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


# What gzip raises on a damaged or cut-off stream (BadGzipFile is an OSError).
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def _not_gzip(path: Path, where: str) -> RecordError | None:
    """A RecordError if a `.gz` file does not start with the gzip magic bytes."""
    if not path.name.lower().endswith(".gz"):
        return None
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:2] == b"\x1f\x8b" or not head:
        return None
    plain = path.name[:-3]
    return RecordError(f"{where}: not gzip data, though the name ends in .gz (it starts with {head!r}); "
                       f"if it is plain text, rename it to {plain}, else compress it with `gzip {plain}`")


def _broken_gzip(where: str, exc: BaseException, after: str) -> RecordError:
    if isinstance(exc, EOFError):
        what = "the gzip data ends early: the file is cut off (an interrupted download or copy?)"
    else:
        what = f"the gzip data is damaged ({exc})"
    return RecordError(f"{where}: {what}; {after}. Fetch or compress the file again; "
                       f"`gzip -t FILE` checks it")


def _too_large(where: str, size: str, max_bytes: int) -> RecordError:
    return RecordError(f"{where}: record is {size}, over the limit of {max_bytes / 2**20:g} MiB "
                       f"(raise it with --max-record-mb)")


def _decode(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"{where}: not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8, "
                          f"e.g. `iconv -f latin1 -t utf-8`") from None


def read_jsonl(path: Path, max_bytes: int) -> Iterator[tuple[str, Any, int]]:
    """Yield (location, record or RecordError, bytes) for each line, never holding more than one line."""
    bad = _not_gzip(path, "line 1")
    if bad is not None:
        yield "line 1", bad, 0
        return
    with _open_binary(path) as f:
        lineno = 0
        while True:
            try:
                raw = f.readline(max_bytes + 1)
            except _GZIP_ERRORS as exc:
                where = f"line {lineno + 1}"
                yield where, _broken_gzip(where, exc, f"the {lineno} line(s) before it read fine"), 0
                return
            if not raw:
                return
            lineno += 1
            where = f"line {lineno}"
            size = len(raw)
            if len(raw) > max_bytes and not raw.endswith(b"\n"):
                try:
                    while raw and not raw.endswith(b"\n"):  # skip the rest of the oversized line
                        raw = f.readline(1 << 20)
                        size += len(raw)
                except _GZIP_ERRORS as exc:
                    yield where, _broken_gzip(where, exc, "it is also over the size limit"), size
                    return
                yield where, _too_large(where, f"{size / 2**20:.1f} MiB", max_bytes), size
                continue
            if not raw.strip():
                continue
            try:
                text = _decode(raw, where)
                yield where, json.loads(text), size
            except RecordError as exc:
                yield where, exc, size
            except json.JSONDecodeError as exc:
                yield where, RecordError(f"{where}: malformed JSON ({exc.msg} at column {exc.colno})"), size


class _RecordTooLarge(Exception):
    pass


class _LimitedReader:
    """Hands the streaming JSON parser its bytes, and stops it inside a record that outgrows the limit.

    The parser reads ahead by at most `_JSON_BUF` bytes, so a record is stopped once the bytes read since the
    last complete record pass the limit plus that; a record at most that much over the limit gets through.
    """

    def __init__(self, f: io.BufferedIOBase, limit: int) -> None:
        self.f, self.limit, self.pos, self.mark = f, limit, 0, 0

    def read(self, n: int = -1) -> bytes:
        if self.pos - self.mark > self.limit + _JSON_BUF:
            raise _RecordTooLarge
        data = self.f.read(n if n >= 0 else _JSON_BUF)
        self.pos += len(data)
        return data


_JSON_BUF = 64 << 10


def _first_line(path: Path, max_bytes: int) -> tuple[str, Any]:
    """('json', value) if the first line parses; ('long', None) if it is over the limit; else ('bad', None).
    'json' becomes 'only' when that line is all the file holds."""
    try:
        with _open_binary(path) as f:
            first = f.readline(max_bytes + 1)
            if len(first) > max_bytes and not first.endswith(b"\n"):
                return "long", None
            rest = f.read(1 << 16).strip()
    except _GZIP_ERRORS:
        return "bad", None  # reading it line by line reports where the gzip data breaks
    try:
        value = json.loads(first)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "bad", None
    return ("json" if rest else "only"), value


def _describe_object(path: Path) -> tuple[list[tuple[str, str]], bool]:
    """(key, what its value is) for the top-level keys of a file holding one JSON object, the first 20; and
    whether the text does read as one object (its end, or 20 keys, reached without a JSON error)."""
    import ijson

    keys: list[tuple[str, str]] = []
    whole = False
    kinds = {"start_map": "an object", "string": "a string", "number": "a number", "boolean": "a boolean",
             "null": "null"}
    depth, key, pending = 0, "", ""
    with _open_binary(path) as f:
        try:
            for _, event, value in ijson.parse(f):
                if depth == 1 and event == "map_key":
                    key, pending = value, "value"
                elif pending == "value":
                    if event == "start_array":
                        pending = "first item"
                    else:
                        keys.append((key, kinds.get(event, "a value")))
                        pending = ""
                elif pending == "first item":
                    keys.append((key, "a list of objects" if event == "start_map" else
                                 "an empty list" if event == "end_array" else "a list"))
                    pending = ""
                if event in ("start_map", "start_array"):
                    depth += 1
                elif event in ("end_map", "end_array"):
                    depth -= 1
                if len(keys) >= 20 or (depth == 0 and event == "end_map"):
                    whole = True
                    break
        except (ijson.JSONError, *_GZIP_ERRORS, UnicodeDecodeError):
            pass  # not one object after all
    return keys, whole


def _object_not_array(path: Path, where: str, keys: list[tuple[str, str]]) -> RecordError:
    listed = ", ".join(f"`{k}` ({what})" for k, what in keys) or "none"
    lists = [k for k, what in keys if what == "a list of objects"]
    if lists:
        stem = path.name.split(".")[0]
        jq = f"jq -c '.{lists[0]}[]'"
        pipe = f"gzip -dc {path} | {jq}" if path.name.lower().endswith(".gz") else f"{jq} {path}"
        fix = (f"to ingest the records under `{lists[0]}`, extract them first: "
               f"{pipe} > {stem}.{lists[0]}.jsonl")
    else:
        fix = "put the records in an array [{...}, {...}], or write one object per line (JSON Lines)"
    return RecordError(f"{where}: the file holds one JSON object, not a list of records "
                       f"(its keys: {listed}); a .json file must hold an array of records, or one record "
                       f"per line; {fix}")


def read_json_array(path: Path, max_bytes: int,
                    rename: dict[str, str] | None = None) -> Iterator[tuple[str, Any, int]]:
    import ijson

    bad = _not_gzip(path, "line 1")
    if bad is not None:
        yield "line 1", bad, 0
        return
    try:
        with _open_binary(path) as f:
            head = f.read(4096).lstrip()
    except _GZIP_ERRORS as exc:
        yield "line 1", _broken_gzip("line 1", exc, "nothing could be read"), 0
        return
    if head.startswith(b"{"):
        # JSON Lines saved with a .json name, or one object (a wrapper such as {"data": [...]}) that is not
        # a list of records: the first reads line by line, the second only as a whole.
        first, value = _first_line(path, max_bytes)
        wrapper = first == "bad"
        if first == "only" and isinstance(value, dict):  # a one-line file: a record, or a wrapper?
            names = {(rename or {}).get(k, k) for k in value}
            wrapper = not names & set(PROMPT_FIELDS) and any(
                isinstance(v, list) and v and isinstance(v[0], dict) for v in value.values())
        if wrapper:
            keys, whole = _describe_object(path)
            if whole:
                yield "line 1", _object_not_array(path, "line 1", keys), 0
                return
        yield from read_jsonl(path, max_bytes)
        return
    if not head.startswith(b"["):
        yield "line 1", RecordError("line 1: a .json file must hold a JSON array of records [{...}, ...], "
                                    f"or one JSON object per line; this one starts with {head[:20]!r}"), 0
        return
    i = 0
    with _open_binary(path) as f:
        reader = _LimitedReader(f, max_bytes)
        try:
            for i, item in enumerate(ijson.items(reader, "item", use_float=True, buf_size=_JSON_BUF)):
                yield f"item {i}", item, 0
                reader.mark = reader.pos
                i += 1
        except _RecordTooLarge:
            seen = (reader.pos - reader.mark - _JSON_BUF) / 2**20
            too_large = _too_large(f"item {i}", f"more than {seen:.1f} MiB", max_bytes)
            yield f"item {i}", RecordError(f"{too_large}; the file was read no further"), 0
        except ijson.JSONError as exc:
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            yield f"item {i}", RecordError(f"item {i}: malformed JSON ({msg}), about byte {reader.pos} "
                                           f"of the decompressed text; `python -m json.tool FILE` shows "
                                           f"where"), 0
        except UnicodeDecodeError as exc:
            yield f"item {i}", RecordError(f"item {i}: not valid UTF-8 (byte {exc.start}); re-encode the "
                                           f"file as UTF-8"), 0
        except _GZIP_ERRORS as exc:
            yield f"item {i}", _broken_gzip(f"item {i}", exc, f"the {i} record(s) before it read fine"), 0


def _check_arrow_schema(path: Path, schema: pa.Schema, generations: bool, rename: dict[str, str]) -> None:
    names = [rename.get(n, n) for n in schema.names]
    if not any(n in names for n in PROMPT_FIELDS):
        raise CatalogError(f"{path}: wrong schema: no `problem`, `prompt` or `messages` column (found: "
                           f"{', '.join(schema.names)}). Rename a column with --rename OLD=problem.")
    if generations and not any(n in names for n in RESPONSE_FIELDS):
        raise CatalogError(f"{path}: wrong schema for --generations: no response column ({', '.join(RESPONSE_FIELDS)}; "
                           f"found: {', '.join(schema.names)}). Rename one with --rename OLD=response.")

    def is_str(t: pa.DataType) -> bool:
        return pa.types.is_string(t) or pa.types.is_large_string(t)

    expect = {"problem": ("string", is_str), "kind": ("string", is_str), "domain": ("string", is_str),
              "language": ("string", is_str), "finish_reason": ("string", is_str),
              "reasoning_content": ("string", is_str), "reasoning": ("string", is_str),
              "answer": ("string or number", lambda t: is_str(t) or pa.types.is_integer(t)
                         or pa.types.is_floating(t) or pa.types.is_decimal(t)),
              "prompt_tokens": ("integer", pa.types.is_integer), "completion_tokens": ("integer", pa.types.is_integer)}
    for orig, fld in zip(schema.names, schema):
        name = rename.get(orig, orig)
        if name in expect and not pa.types.is_null(fld.type):
            label, ok = expect[name]
            if not ok(fld.type):
                raise CatalogError(f"{path}: wrong schema: column `{orig}` has type {fld.type}, expected {label}.")


def read_parquet(path: Path, opts: IngestOptions) -> Iterator[tuple[str, Any, int]]:
    try:
        # A buffered stream reads column chunks piecewise, so even a file written as one huge row group streams.
        pf = pq.ParquetFile(path, buffer_size=8 << 20)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise CatalogError(f"{path}: not a readable Parquet file ({exc})") from None
    _check_arrow_schema(path, pf.schema_arrow, opts.generations, opts.rename)
    # One batch iterator per row group: a single iterator over the whole file kept buffers alive as it went
    # (its memory grew with the file here); each finished iterator releases its row group.
    groups = (pf.iter_batches(batch_size=1000, row_groups=[i]) for i in range(pf.num_row_groups))
    yield from _arrow_batches(groups, opts.max_record_bytes)


def _value_bytes(value: Any) -> int:
    """About the bytes a value takes as JSON text: strings in UTF-8, containers summed."""
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8", "surrogatepass"))
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, dict):
        return sum(len(k) + _value_bytes(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return sum(_value_bytes(v) for v in value)
    return 8


def _arrow_batches(groups: Iterable[Iterable[pa.RecordBatch]],
                   max_bytes: int) -> Iterator[tuple[str, Any, int]]:
    row = 0
    for batches in groups:
        for batch in batches:
            for rec in batch.to_pylist():
                where = f"row {row}"
                size = _value_bytes(rec)
                if size > max_bytes:
                    yield where, _too_large(where, f"{size / 2**20:.1f} MiB", max_bytes), 0
                else:
                    yield where, rec, 0
                row += 1


def read_hf(path: Path, opts: IngestOptions) -> Iterator[tuple[str, Any, int]]:
    import datasets

    ds = datasets.load_from_disk(str(path))
    if isinstance(ds, datasets.DatasetDict):
        if not opts.split:
            raise CatalogError(f"{path} holds several splits ({', '.join(ds)}); choose one with --split NAME.")
        if opts.split not in ds:
            raise CatalogError(f"{path} has no split {opts.split!r}; it has: {', '.join(ds)}.")
        ds = ds[opts.split]
    table = ds.data.table if hasattr(ds.data, "table") else ds.data
    _check_arrow_schema(path, table.schema, opts.generations, opts.rename)
    yield from _arrow_batches([table.to_batches(max_chunksize=1000)], opts.max_record_bytes)


def hub_repo_id(source: str) -> str | None:
    """ORG/NAME if `source` names a Hub dataset (hf://datasets/ORG/NAME), else None."""
    prefix = next((p for p in HUB_PREFIXES if source.startswith(p)), None)
    if prefix is None:
        return None
    repo = source[len(prefix):].strip("/")
    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", repo):
        raise CatalogError(f"{source}: write a Hub dataset as hf://datasets/ORG/NAME (choose the subset with "
                           f"--config, the split with --split and the branch, tag or commit with --revision)")
    return repo


def hub_snapshot(repo: str, revision: str | None) -> tuple[Path, str]:
    """The revision's files in the Hugging Face cache (downloaded once; with HF_HUB_OFFLINE=1 the cache only) and
    its commit sha. Not found, gated, private or not cached: one CatalogError naming the dataset and the fix."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError,
                                        RevisionNotFoundError)

    where = f"hf://datasets/{repo}" + (f" at revision {revision!r}" if revision else "")
    try:
        folder = Path(snapshot_download(repo, repo_type="dataset", revision=revision))
    except GatedRepoError:
        raise CatalogError(f"{where} is gated: accept its conditions on the dataset's Hub page, then set HF_TOKEN "
                           f"(or run `hf auth login`) with a token of that account") from None
    except RevisionNotFoundError:
        raise CatalogError(f"{where}: the dataset has no such branch, tag or commit; check --revision") from None
    except RepositoryNotFoundError:
        raise CatalogError(f"{where}: no such dataset on the Hub, or it is private: check ORG/NAME, or set HF_TOKEN "
                           f"(or run `hf auth login`) with a token that can read it") from None
    except LocalEntryNotFoundError:
        raise CatalogError(f"{where} is not in the local Hugging Face cache and the Hub cannot be reached "
                           f"(HF_HUB_OFFLINE=1, or no network): ingest it once online, or unset HF_HUB_OFFLINE") from None
    return folder, folder.name  # the cache names a revision's folder by its commit sha


def read_hub(folder: Path, repo: str, opts: IngestOptions) -> Iterator[tuple[str, Any, int]]:
    """Records of one config and split of a Hub dataset, streamed through `datasets` from its cached files."""
    import datasets

    configs = datasets.get_dataset_config_names(str(folder))
    name = f"hf://datasets/{repo}"
    if opts.config is None and len(configs) > 1:
        raise CatalogError(f"{name} has several configs ({', '.join(configs)}); choose one with --config NAME")
    if opts.config is not None and opts.config not in configs:
        raise CatalogError(f"{name} has no config {opts.config!r}; it has: {', '.join(configs)}")
    splits = datasets.get_dataset_split_names(str(folder), opts.config)
    if opts.split is None and len(splits) > 1:
        raise CatalogError(f"{name} has several splits ({', '.join(splits)}); choose one with --split NAME")
    if opts.split is not None and opts.split not in splits:
        raise CatalogError(f"{name} has no split {opts.split!r}; it has: {', '.join(splits)}")
    ds = datasets.load_dataset(str(folder), opts.config, split=opts.split or splits[0], streaming=True)
    if ds.features is not None:
        _check_arrow_schema(Path(name), ds.features.arrow_schema, opts.generations, opts.rename)
    tables = ds.with_format("arrow").iter(batch_size=1000)
    yield from _arrow_batches((t.to_batches() for t in tables), opts.max_record_bytes)


def read_records(path: Path, opts: IngestOptions, fmt: str | None = None) -> Iterator[tuple[str, Any, int]]:
    """(where, record or the RecordError that says what is wrong with it, bytes read) for each record of a file
    or saved dataset: the one reader of record files, for ingest and for the filters' benchmark files."""
    fmt = fmt or detect_format(path)
    return {"jsonl": lambda: read_jsonl(path, opts.max_record_bytes),
            "json": lambda: read_json_array(path, opts.max_record_bytes, opts.rename),
            "parquet": lambda: read_parquet(path, opts), "hf": lambda: read_hf(path, opts)}[fmt]()


# ---------------------------------------------------------------------------------------------- records
def guess_language(text: str) -> str:
    """A cheap default when the row does not say: by script, from the one script table."""
    from .scripts import guess_language as by_script

    return by_script(text)


def _messages(value: Any, where: str, name: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        if not value.strip():
            raise RecordError(f"{where}: field `{name}` is empty; every prompt needs text")
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise RecordError(f"{where}: field `{name}` must be a string or a non-empty list of {{role, content}} "
                          f"messages, got {type(value).__name__}")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise RecordError(f"{where}: `{name}[{i}]` must be an object with string `role` and `content`")
        if m["role"].strip().lower() not in ROLES:
            raise RecordError(f"{where}: `{name}[{i}].role` is {m['role']!r}; use one of {', '.join(ROLES)}")
        out.append({"role": m["role"], "content": m["content"]})
    if not any(m["role"].lower() == "user" and m["content"].strip() for m in out):
        raise RecordError(f"{where}: `{name}` has no non-empty user message; every prompt needs text")
    return out


def _opt_str(rec: dict[str, Any], key: str, where: str) -> str | None:
    v = rec.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise RecordError(f"{where}: field `{key}` must be a string, got {type(v).__name__} ({str(v)[:40]!r})")
    return v


def _opt_int(rec: dict[str, Any], key: str, where: str) -> int | None:
    v = rec.get(key)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise RecordError(f"{where}: field `{key}` must be a non-negative integer, got {v!r}")
    return v


def _tests_from_string(text: str, where: str) -> Any:
    """`tests` given as a string: JSON, or a Python literal ("[{'input': ...}]", as some public code datasets
    store them; the code judge reads both). literal_eval evaluates no code. Stored as JSON either way."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise RecordError(f"{where}: field `tests` is a string but neither JSON nor a Python literal "
                          f"(starts {text[:40]!r}); give a list or object, e.g. "
                          f"[{{\"input\": \"1\", \"output\": \"2\"}}]") from None


def _with_choices(rec: dict[str, Any], name: str, where: str, opts: IngestOptions) -> dict[str, Any]:
    """The record as a multiple-choice prompt: lettered options in the prompt text, the letter as the answer; the
    correct option's text and the options as shown are kept in the metadata."""
    question = rec[name]
    if not isinstance(question, str):
        raise RecordError(f"{where}: field `{name}` must be the question's text for a multiple-choice record, got "
                          f"{type(question).__name__}; give the question as `problem` or `prompt`")
    try:
        text, letter, shown = multiple_choice(question, rec, opts.choices, opts.shuffle_choices)
    except ChoiceError as exc:
        raise RecordError(f"{where}: {exc}") from None
    return {**rec, name: text, "answer": letter, "answer_text": shown[LETTERS.index(letter)], "options": shown}


def prompt_row(rec: Any, where: str, opts: IngestOptions, uri: str, ingest_id: str) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise RecordError(f"{where}: a record must be a JSON object, got {type(rec).__name__}")
    if opts.rename:
        rec = {opts.rename.get(k, k): v for k, v in rec.items()}
    if opts.generations and PUBLISHED_COLUMNS <= rec.keys():
        rec = _published_row(rec)
    name = next((f for f in PROMPT_FIELDS if rec.get(f) is not None), None)
    if name is None:
        raise RecordError(f"{where}: no prompt: give a `problem`, `prompt` or `messages` field "
                          f"(found: {', '.join(sorted(rec)) or 'nothing'}; map one with --rename OLD=problem)")
    if opts.choices:
        rec = _with_choices(rec, name, where, opts)
    messages = _messages(rec[name], where, name)
    answer = rec.get("answer")
    if answer is not None:
        if isinstance(answer, bool) or not isinstance(answer, (str, int, float)):
            raise RecordError(f"{where}: field `answer` must be a string or a number, got {type(answer).__name__}")
        answer = answer if isinstance(answer, str) else (str(int(answer)) if float(answer).is_integer() else str(answer))
    tests = rec.get("tests")
    if tests is not None:
        if isinstance(tests, str):
            tests = _tests_from_string(tests, where)
        if not isinstance(tests, (list, dict)):
            raise RecordError(f"{where}: field `tests` must be a list or an object, got {type(tests).__name__}")
        try:
            tests = canonical_json(tests)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"{where}: field `tests` holds a value JSON cannot store ({exc}); use lists, "
                              f"objects, strings and numbers") from None
    kind = _opt_str(rec, "kind", where) or opts.kind or "reasoning"
    if kind not in KINDS:
        raise RecordError(f"{where}: field `kind` is {kind!r}; use `reasoning` or `non_reasoning`")
    norm = normalise_messages(messages)
    problem = next(m["content"] for m in reversed(norm) if m["role"] == "user")
    language = _opt_str(rec, "language", where) or opts.language or guess_language(problem)
    if not LANG_RE.match(language):
        raise RecordError(f"{where}: field `language` is {language!r}; use a language code such as en or zh")
    domain = _opt_str(rec, "domain", where) or opts.domain or (
        CHOICE_DOMAIN if opts.choices else "code" if tests else "math" if answer else "general")
    metadata = {k: v for k, v in rec.items()
                if k not in PROMPT_KNOWN and not (opts.generations and k in GENERATION_KNOWN)}
    try:
        meta_json = canonical_json(metadata)
    except (TypeError, ValueError):
        meta_json = json.dumps(metadata, sort_keys=True, ensure_ascii=False, default=str)
    return {"prompt_id": prompt_id(opts.source, norm), "source_id": source_id(opts.source), "source": opts.source,
            "ingest_id": ingest_id, "source_uri": uri, "source_row": None, "messages": canonical_json(norm),
            "problem": problem, "answer": answer, "tests": tests, "kind": kind, "domain": domain,
            "language": language, "metadata": meta_json, "_rec": rec}


def _published_row(rec: dict[str, Any]) -> dict[str, Any]:
    """A row of a release r1-factory published, as an import: its prompt turns, the reference as the answer, and
    the model's reasoning and answer as the response (`messages` repeats both, `completion` the whole turn)."""
    rest = {k: v for k, v in rec.items() if k not in ("messages", "completion", "answer", "reference")}
    return {**rest, "answer": rec["reference"], "response": rec["answer"]}


def generation_fields(rec: dict[str, Any], where: str) -> dict[str, Any]:
    name = next((f for f in RESPONSE_FIELDS if rec.get(f) is not None), None)
    if name is None:
        raise RecordError(f"{where}: no response: give one of {', '.join(RESPONSE_FIELDS)} with --generations")
    value = rec[name]
    if isinstance(value, list):  # a completion in chat format
        parts = [m.get("content") for m in value if isinstance(m, dict) and m.get("role") == "assistant"]
        texts = [p for p in parts if isinstance(p, str)]
        if not texts or len(texts) != len(parts):
            raise RecordError(f"{where}: `{name}` is a list but holds no assistant message with string content")
        value = "".join(texts)
    if not isinstance(value, str):
        raise RecordError(f"{where}: field `{name}` must be a string, got {type(value).__name__}")
    reasoning = next((rec[f] for f in REASONING_FIELDS if rec.get(f) is not None), None)
    if reasoning is not None and not isinstance(reasoning, str):
        raise RecordError(f"{where}: the reasoning field must be a string, got {type(reasoning).__name__}")
    if not value.strip() and not (reasoning or "").strip():
        raise RecordError(f"{where}: field `{name}` is empty")
    if reasoning is None:
        from catalogs.split import THINK, split_reasoning

        reasoning, answer = split_reasoning(value, THINK)
    else:
        answer = value
    return {"text": value, "reasoning": reasoning, "answer": answer,
            "finish_reason": _opt_str(rec, "finish_reason", where),
            # A row of a published release keeps the id it was published with (this catalog's id is its own hash).
            "published_id": _opt_str(rec, "generation_id", where),
            "prompt_tokens": _opt_int(rec, "prompt_tokens", where),
            "completion_tokens": _opt_int(rec, "completion_tokens", where)}


# ---------------------------------------------------------------------------------------------- the ingest
def ingest(catalog: Catalog, path: str | Path, opts: IngestOptions,
           progress: Callable[[int, int], None] | None = None, *,
           also: Callable[[duckdb.DuckDBPyConnection], None] | None = None) -> IngestReport:
    """Validate and stage every record, then publish them in one transaction (or nothing at all). `also` writes
    more in that transaction (`r1f eval` records its run there: one commit for both)."""
    t0 = time.perf_counter()
    repo = hub_repo_id(str(path))
    path = Path(path)
    if repo is None and not path.exists():
        raise CatalogError(f"{path}: no such file or folder.")
    if opts.generations and not opts.model:
        raise CatalogError("--generations needs --model NAME: the model that produced the responses.")
    if repo is not None:
        folder, sha = hub_snapshot(repo, opts.revision)
        fmt = "hub"
        # The revision's commit sha is the provenance: `r1f show` prints it with every prompt's source.
        uri = f"hf://datasets/{repo}@{sha}" + "".join(
            f"{sep}{k}={v}" for sep, (k, v) in zip("?&", [(k, v) for k, v in (("config", opts.config),
                                                                              ("split", opts.split)) if v]))
    else:
        fmt = detect_format(path)
        uri = str(path.resolve())
    ingest_id = "i_" + uuid.uuid4().hex[:24]
    report = IngestReport(source=opts.source, file=uri, format=fmt, ingest_id=ingest_id)
    rid = None
    known_gens: set[str] = set()
    if opts.generations:
        run_params = {"kind": "import", "model": opts.model, "backend": "import", "source": opts.source}
        rid = run_id(run_params)  # recorded in the final transaction, with everything else
        report.run_id = rid
        known_gens = catalog.generation_ids(rid)
    records = read_hub(folder, repo, opts) if repo is not None else read_records(path, opts, fmt)

    # The staging folder is made when a batch is first written to it: a file whose records fit one batch of
    # prompts is published from memory (no Parquet written and read back), which is most of a small file's cost.
    staging: Path | None = None
    prompt_file: Path | None = None
    errors: list[str] = []
    staged: list[StagedBatch] = []
    prompt_buf: list[dict[str, Any]] = []
    gen_buf: list[dict[str, Any]] = []
    gen_bytes = 0
    bytes_read = 0
    total = path.stat().st_size if repo is None and path.is_file() else 0
    writer: pq.ParquetWriter | None = None

    def staged_in() -> Path:
        nonlocal staging
        staging = staging or catalog._staging_dir()
        return staging

    def flush() -> None:
        nonlocal writer, gen_bytes, prompt_file
        if prompt_buf:
            table = pa.Table.from_pylist(prompt_buf, schema=prompt_schema())
            if writer is None:
                prompt_file = staged_in() / "prompts.parquet"
                writer = pq.ParquetWriter(prompt_file, prompt_schema(), compression="zstd")
            writer.write_table(table)
            prompt_buf.clear()
        if gen_buf:
            staged.append(catalog.stage_generations(gen_buf, staged_in(), ingest_id))
            gen_buf.clear()
            gen_bytes = 0

    try:
        for where, rec, size in records:
            report.rows_read += 1
            bytes_read += size
            try:
                if isinstance(rec, RecordError):
                    raise rec
                row = prompt_row(rec, where, opts, uri, ingest_id)
                row["source_row"] = int(where.rsplit(" ", 1)[1])
                fields = generation_fields(row.pop("_rec"), where) if opts.generations else None
            except RecordError as exc:
                errors.append(str(exc))
                if len(errors) >= MAX_ERRORS:
                    break
                continue
            if errors:
                continue  # keep validating to report more errors, but stage nothing more
            pid = row["prompt_id"]
            prompt_buf.append(row)  # repeats of a prompt are folded at commit, in SQL
            if fields is not None:
                assert rid is not None  # fields are read only with --generations, which sets rid
                key = "sha:" + hashlib.sha256((fields["reasoning"] or "").encode() + b"\x00"
                                              + fields["text"].encode()).hexdigest()[:24]
                gid = generation_id(pid, rid, key)
                if gid in known_gens:  # already in the catalog: skip before paying to stage its text
                    report.generations_already_present += 1
                    continue
                gen_buf.append({"generation_id": gid, "prompt_id": pid, "run_id": rid, "sample_index": None,
                                "seed": None, "source_row": row["source_row"], **fields})
                gen_bytes += len(fields["text"]) + len(fields["reasoning"] or "")
            if len(prompt_buf) >= BATCH_ROWS or len(gen_buf) >= BATCH_ROWS or gen_bytes >= BATCH_BYTES:
                flush()
                if progress:
                    progress(bytes_read, total)
        if errors:
            raise IngestError(path, errors)
        if report.rows_read == 0:
            raise CatalogError(f"{path}: no records found; nothing was ingested.")
        # Prompts still buffered, and none written before them: published from memory. Else the rest joins the file.
        in_memory = pa.Table.from_pylist(prompt_buf, schema=prompt_schema()) if writer is None and prompt_buf else None
        if in_memory is not None:
            prompt_buf.clear()
        flush()
        if writer is not None:
            writer.close()
            writer = None
        with catalog.transaction() as con:
            con.execute("INSERT OR IGNORE INTO sources (source_id, name) VALUES (?, ?)",
                        [source_id(opts.source), opts.source])
            if in_memory is not None or prompt_file is not None:
                cols = ", ".join(prompt_schema().names)
                if in_memory is not None:
                    con.register("incoming_prompts", in_memory)
                    incoming, args = "incoming_prompts", []
                else:
                    incoming, args = "read_parquet(?)", [str(prompt_file)]
                # A prompt twice in the file is stored once, as its first row. DuckDB answers the INSERT with the
                # rows it added.
                ((added,),) = con.execute(
                    f"INSERT INTO prompts ({cols}) SELECT {cols} FROM {incoming} ANTI JOIN prompts USING (prompt_id) "
                    f"QUALIFY row_number() OVER (PARTITION BY prompt_id ORDER BY source_row) = 1", args).fetchall()
                distinct = (len(set(in_memory.column("prompt_id").to_pylist())) if in_memory is not None else
                            one_row(con.execute(f"SELECT count(DISTINCT prompt_id) FROM {incoming}", args))[0])
            else:
                added = distinct = 0
            report.prompts_added = int(added)
            report.prompts_already_present = distinct - report.prompts_added
            if rid is not None:
                con.execute("INSERT OR IGNORE INTO runs (run_id, kind, model, backend, source, sampling, recipe, "
                            "code_version) VALUES (?, 'import', ?, 'import', ?, '{}', '{}', ?)",
                            [rid, opts.model, opts.source, code_version()])
            report.generations_added = catalog.commit_staged(con, staged)
            report.generations_already_present += sum(b.rows for b in staged) - report.generations_added
            con.execute("INSERT INTO ingests (ingest_id, source_id, uri, format, mode, rows_read, prompts_added, "
                        "generations_added, run_id) VALUES (?,?,?,?,?,?,?,?,?)",
                        [ingest_id, source_id(opts.source), uri, fmt,
                         "generations" if opts.generations else "prompts", report.rows_read,
                         report.prompts_added, report.generations_added, rid])
            if also is not None:
                also(con)
    finally:
        if writer is not None:
            writer.close()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    report.seconds = time.perf_counter() - t0
    return report
