"""Content-addressed ids: the same content always gets the same id, so every stage is idempotent.

An id is a short prefix naming what it is (so `r1f show ID` knows where to look) and 24 hex digits
(96 bits) of a SHA-256 over a canonical JSON encoding of the content.
"""
from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from typing import Any

ID_HEX = 24
PREFIXES = {"p_": "prompt", "r_": "run", "g_": "generation", "s_": "source", "rel_": "release"}


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace: the byte-stable form we hash."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def content_hash(*parts: Any) -> str:
    return hashlib.sha256(canonical_json(list(parts)).encode("utf-8")).hexdigest()[:ID_HEX]


def normalise_text(text: str) -> str:
    """Unicode NFC, Unix newlines, no trailing spaces on lines, no surrounding blank space."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return "\n".join(line.rstrip() for line in text.split("\n")).strip()


def normalise_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    return [{"role": m["role"].strip().lower(), "content": normalise_text(m["content"])} for m in messages]


def prompt_id(source: str, messages: list[dict[str, str]]) -> str:
    return "p_" + content_hash("prompt", source, normalise_messages(messages))


def run_id(params: dict[str, Any]) -> str:
    """A run is identified by what changes its outputs: model, backend, template and sampling.

    A local model folder is named by its content (`model_sha256`, from `backends.config.model_sha256`), not by its
    path: the same model in another folder makes the same run, so the same generation ids and seeds, so the same
    samples. A rerun in a fresh folder then repeats the first run exactly."""
    keys = ("model", "backend", "template", "template_version", "sampling", "kind", "source")
    key = {k: params.get(k) for k in keys}
    if params.get("model_sha256"):
        key["model"] = "sha256:" + str(params["model_sha256"])
    return "r_" + content_hash("run", key)


def generation_id(prompt_id: str, run_id: str, sample_index: int | str) -> str:
    """Sample index is an int for generated samples; imports use a content key (see ingest)."""
    return "g_" + content_hash("generation", prompt_id, run_id, sample_index)


def sample_seed(generation_id: str) -> int:
    """Per-sample seed derived from the generation id: a resumed run reproduces an uninterrupted one,
    and no two sample indices share a seed."""
    return int(hashlib.sha256(generation_id.encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def source_id(name: str) -> str:
    return "s_" + content_hash("source", name)


def kind_of(any_id: str) -> str | None:
    for prefix, kind in PREFIXES.items():
        if any_id.startswith(prefix):
            return kind
    return None
