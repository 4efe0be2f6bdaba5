"""The one `\\boxed{}` extractor: the math_accuracy judge reads the last box, the hygiene filter counts them.

Forms: `\\boxed{...}` and `\\fbox{...}` with balanced braces at any depth (spaces allowed before the
brace), and the bare `\\boxed 5` (up to the next space, `$`, `.` or `,`). A box cut off before its
closing brace has no content.
"""
from __future__ import annotations

from collections.abc import Iterator

TAGS = ("\\boxed", "\\fbox")


def _box_at(text: str, start: int) -> tuple[str | None, int]:
    """(content, end) of the box whose tag starts at `start`; content None when it has none."""
    tag = TAGS[0] if text.startswith(TAGS[0], start) else TAGS[1]
    i = start + len(tag)
    j = i
    while j < len(text) and text[j].isspace():
        j += 1
    if j < len(text) and text[j] == "{":
        depth = 0
        for k in range(j, len(text)):
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    return text[j + 1:k], k + 1
        return None, len(text)  # unbalanced: the generation was cut inside the box
    if i < len(text) and text[i] == " ":  # `\boxed 5`
        end = i + 1
        while end < len(text) and not text[end].isspace() and text[end] not in "$.,":
            end += 1
        return (text[i + 1:end] or None), end
    return None, i


def _starts(text: str, pos: int = 0) -> Iterator[int]:
    """Start of every tag at or after `pos`, in order."""
    nxt = {tag: text.find(tag, pos) for tag in TAGS}
    while True:
        live = [p for p in nxt.values() if p >= 0]
        if not live:
            return
        p = min(live)
        yield p
        for tag in TAGS:
            if nxt[tag] == p:
                nxt[tag] = text.find(tag, p + 1)


def last_boxed(text: str) -> str | None:
    """Content of the last box in `text` (of a nest of boxes, the innermost), or None."""
    starts = list(_starts(text or ""))
    return _box_at(text, starts[-1])[0] if starts else None


def all_boxed(text: str) -> list[str]:
    """Contents of the outermost boxes, left to right (a box inside a box is part of its content)."""
    text = text or ""
    out: list[str] = []
    pos = 0
    while True:
        start = next(_starts(text, pos), -1)
        if start < 0:
            return out
        content, end = _box_at(text, start)
        if content is not None:
            out.append(content)
            pos = end
        else:
            pos = start + 1
