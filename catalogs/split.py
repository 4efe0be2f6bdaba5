"""Split a generation into its reasoning and its answer (summary), whatever markers the template uses.

Handles `<think>…</think>` (with or without the opening tag, which chat templates often put in the
prompt), `|special_token|reasoning|special_token|summary`, `<answer>…</answer>` and no markers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class Markers:
    reasoning_start: str | None = None
    reasoning_end: str | None = None
    answer_start: str | None = None
    answer_end: str | None = None

    @classmethod
    def from_dict(cls, data: dict | None) -> Markers:
        data = data or {}
        unknown = set(data) - {"reasoning_start", "reasoning_end", "answer_start", "answer_end"}
        if unknown:
            raise ValueError(
                f"markers: unknown key(s) {sorted(unknown)}; use reasoning_start, reasoning_end, "
                "answer_start, answer_end"
            )
        return cls(**{k: (v or None) for k, v in data.items()})


THINK = Markers("<think>", "</think>")
SPECIAL_TOKEN = Markers("|special_token|", "|special_token|")
R1_ZERO = Markers("<think>", "</think>", "<answer>", "</answer>")
NONE = Markers()


def _strip(s: str | None) -> str | None:
    return None if s is None else s.strip()


def _split_same_marker(text: str, marker: str) -> tuple[str | None, str]:
    stripped = text.lstrip()
    if stripped.startswith(marker):
        rest = stripped[len(marker):]
        end = rest.find(marker)
        if end < 0:  # cut off before the summary
            return rest.strip(), ""
        return rest[:end].strip(), rest[end + len(marker):]
    # The opening marker was in the prompt (or omitted): reasoning runs up to the first marker.
    end = text.find(marker)
    if end < 0:
        return None, text
    return text[:end].strip(), text[end + len(marker):]


def _split_pair(text: str, start: str | None, end: str) -> tuple[str | None, str]:
    pos = text.find(end)
    if pos < 0:
        if start and start in text:  # opened but never closed: truncated reasoning, no answer
            return text.split(start, 1)[1].strip(), ""
        return None, text
    head = text[:pos]
    if start and start in head:
        head = head.split(start, 1)[1]
    return head.strip(), text[pos + len(end):]


def _extract_answer(rest: str, markers: Markers) -> str:
    if markers.answer_start and markers.answer_start in rest:
        inner = rest.split(markers.answer_start, 1)[1]
        if markers.answer_end and markers.answer_end in inner:
            inner = inner.split(markers.answer_end, 1)[0]
        return inner.strip()
    if markers.answer_end and markers.answer_end in rest:
        return rest.split(markers.answer_end, 1)[0].strip()
    return rest.strip()


def split_reasoning(text: str, markers: Markers | None = None, reasoning: str | None = None) -> tuple[str | None, str]:
    """Return (reasoning, answer). `reasoning` is None when the text has none.

    `reasoning` given (a server's separate `reasoning_content`) wins over markers in the text.
    """
    markers = markers or NONE
    text = text or ""
    if reasoning is not None and reasoning.strip():
        found, rest = _split_by_markers(text, markers)
        # Some servers also leave the markers in the content; drop that copy.
        return reasoning.strip(), _extract_answer(rest, markers)
    found, rest = _split_by_markers(text, markers)
    return _strip(found), _extract_answer(rest, markers)


def _split_by_markers(text: str, markers: Markers) -> tuple[str | None, str]:
    start, end = markers.reasoning_start, markers.reasoning_end
    if end is None and start is None:
        return None, text
    if end is None:
        # Only an opening marker: reasoning runs up to the answer marker, if any.
        assert start is not None
        if start not in text:
            return None, text
        after = text.split(start, 1)[1]
        if markers.answer_start and markers.answer_start in after:
            r, a = after.split(markers.answer_start, 1)
            return r, markers.answer_start + a
        return after, ""
    if start == end:
        return _split_same_marker(text, end)
    return _split_pair(text, start, end)


# A stored generation's parts, as code-point offsets into its text (the shards' r_start, r_end, a_start).
TEXT_OFFSETS = ("r_start", "r_end", "a_start")


def with_text_parts(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with `reasoning` and `answer` cut from `text` at its TEXT_OFFSETS columns, which it drops; a frame
    without them is returned as it is. The texts of a batch travel to worker processes once this way: the
    sliced columns cost several times the text's own column to pickle."""
    import polars as pl

    if TEXT_OFFSETS[0] not in frame.columns:
        return frame
    r_start, r_end, a_start = (pl.col(c) for c in TEXT_OFFSETS)
    return frame.with_columns(reasoning=pl.col("text").str.slice(r_start, r_end - r_start),
                              answer=pl.col("text").str.slice(a_start)).drop(*TEXT_OFFSETS)
