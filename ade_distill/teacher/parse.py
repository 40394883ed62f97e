"""Teacher output text → relation items ``{key: string}``. Pure: no offsets, no I/O, no LLM.

Real output is messy, so :func:`parse_output` tries, in order:

1. strict JSON of the whole text;
2. the body of a Markdown code fence, or the first balanced ``{...}``/``[...]`` inside prose;
3. a repaired version of that: Python-style single quotes → JSON strings, trailing commas removed,
   ``True/False/None`` → JSON, then :func:`ast.literal_eval` as a last resort;
4. *salvage*: a scan for ``"key": "value"`` pairs of the task's keys in reading order, grouped into items
   (an item is emitted as soon as every key has a value; a repeated key before that starts over). This is what
   keeps the complete items of a truncated (``finish_reason: length``) answer and of the recorded GPT-4
   answers whose objects run on without closing braces.

Items are normalized: keys matched case-insensitively (entity keys or labels), values stripped; a value that
is a list of strings expands into several items; items lacking a key or with an empty value are dropped and
counted; exact duplicates are dropped and counted. Nothing is dropped silently.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ParseResult", "parse_output"]

ParseMethod = Literal["json", "extracted", "repaired", "salvaged", "empty", "failed"]


@dataclass(frozen=True)
class ParseResult:
    """Items recovered from one answer and how.

    Attributes:
        items: relation items, each ``{key: string}`` with every key of the task.
        method: ``json`` (strict), ``extracted`` (fence/prose), ``repaired``, ``salvaged``, ``empty`` (no
            text) or ``failed`` (nothing recoverable).
        dropped_incomplete: items without all keys or with an empty value.
        dropped_duplicates: exact repeats of an earlier item.
        error: why strict parsing failed, when it did.
    """

    items: tuple[dict[str, str], ...] = ()
    method: ParseMethod = "json"
    dropped_incomplete: int = 0
    dropped_duplicates: int = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.method not in ("failed", "empty")


_FENCE = re.compile(r"```[ \t]*(?:json|JSON|python|javascript)?[ \t]*\n?(.*?)(?:```|\Z)", re.S)


def _balanced(text: str, start: int) -> str | None:
    """The balanced JSON/Python value starting at ``text[start]`` (a bracket), honouring quoted strings."""
    stack: list[str] = []
    quote: str | None = None
    i = start
    pairs = {"{": "}", "[": "]"}
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            quote = c
        elif c in pairs:
            stack.append(pairs[c])
        elif c in "}]":
            if not stack or stack.pop() != c:
                return None
            if not stack:
                return text[start : i + 1]
        i += 1
    return None


def _candidates(text: str) -> list[str]:
    out: list[str] = []
    for m in _FENCE.finditer(text):
        out.append(m.group(1).strip())
    # Only the first "{" and the first "[": an inner object of a truncated answer must not pass for the whole.
    for start in sorted(i for i in (text.find("{"), text.find("[")) if i >= 0):
        block = _balanced(text, start)
        if block is not None:
            out.append(block)
            break
    return out


def _requote(text: str) -> str:
    """Rewrite single-quoted strings as JSON double-quoted strings (escapes handled, apostrophes inside
    double-quoted strings kept)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif c == "'":
            j = i + 1
            buf: list[str] = []
            while j < n and text[j] != "'":
                if text[j] == "\\" and j + 1 < n:
                    buf.append(text[j + 1] if text[j + 1] == "'" else text[j : j + 2])
                    j += 2
                    continue
                buf.append(text[j])
                j += 1
            out.append(json.dumps("".join(buf), ensure_ascii=False))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


_TRAILING_COMMA = re.compile(r",(\s*[}\]])")
_PY_CONST = re.compile(r"\b(True|False|None)\b")


def _repair(text: str) -> Any:
    fixed = _requote(text)
    fixed = _TRAILING_COMMA.sub(r"\1", fixed)
    fixed = _PY_CONST.sub(lambda m: {"True": "true", "False": "false", "None": "null"}[m.group(1)], fixed)
    try:
        return json.loads(fixed)
    except json.JSONDecodeError:
        pass
    return ast.literal_eval(text)  # raises ValueError/SyntaxError


def _key_map(keys: Sequence[str], aliases: dict[str, str] | None) -> dict[str, str]:
    m = {k.lower(): k for k in keys}
    for alias, key in (aliases or {}).items():
        m.setdefault(alias.lower(), key)
    return m


def _find_items(obj: Any, keymap: dict[str, str]) -> list[Any] | None:
    """Locate the list of relation items: ``{"relations": [...]}``, a bare list, or the first list value."""
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict):
        if any(isinstance(k, str) and k.lower() in keymap for k in obj):
            return [obj]  # a single item
        for k in ("relations", "relationships", "pairs", "results", "items"):
            for kk, v in obj.items():
                if isinstance(kk, str) and kk.lower() == k and isinstance(v, list):
                    return v
        for v in obj.values():
            if isinstance(v, list):
                return v
            if isinstance(v, dict):
                found = _find_items(v, keymap)
                if found is not None:
                    return found
        return []
    return None


def _normalize(raw: list[Any], keys: Sequence[str], keymap: dict[str, str]) -> tuple[list[dict[str, str]], int]:
    items: list[dict[str, str]] = []
    dropped = 0
    for it in raw:
        if not isinstance(it, dict):
            dropped += 1
            continue
        vals: dict[str, list[str]] = {}
        for k, v in it.items():
            key = keymap.get(str(k).lower())
            if key is None:
                continue
            if isinstance(v, str):
                vs = [v]
            elif isinstance(v, list) and all(isinstance(x, str) for x in v):
                vs = list(v)
            else:
                vs = []
            vs = [x.strip() for x in vs if x.strip()]
            vals[key] = vs
        if any(not vals.get(k) for k in keys):
            dropped += 1
            continue
        combos: list[dict[str, str]] = [{}]
        for k in keys:
            combos = [dict(c, **{k: v}) for c in combos for v in vals[k]]
        items.extend(combos)
    return items, dropped


def _salvage(text: str, keys: Sequence[str], keymap: dict[str, str]) -> tuple[list[dict[str, str]], int]:
    alt = "|".join(re.escape(k) for k in sorted(keymap, key=len, reverse=True))
    pat = re.compile(
        r"""(["'])(""" + alt + r""")\1\s*:\s*(?:"((?:\\.|[^"\\])*)"|'((?:\\.|[^'\\])*)')""",
        re.I,
    )
    items: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    dropped = 0
    for m in pat.finditer(text):
        key = keymap[m.group(2).lower()]
        if m.group(3) is not None:
            try:
                val = json.loads(f'"{m.group(3)}"')
            except json.JSONDecodeError:
                val = m.group(3)
        else:
            val = m.group(4).replace("\\'", "'")
        val = val.strip()
        if key in cur:  # a key repeats before the item was complete: that partial item is lost
            dropped += 1
            cur = {}
        if not val:
            dropped += 1
            cur = {}
            continue
        cur[key] = val
        if all(k in cur for k in keys):
            items.append({k: cur[k] for k in keys})
            cur = {}
    if cur:
        dropped += 1
    return items, dropped


def _dedupe(items: list[dict[str, str]], keys: Sequence[str]) -> tuple[list[dict[str, str]], int]:
    seen: set[tuple[str, ...]] = set()
    out = []
    for it in items:
        sig = tuple(it[k] for k in keys)
        if sig in seen:
            continue
        seen.add(sig)
        out.append(it)
    return out, len(items) - len(out)


def parse_output(
    text: str | None, keys: Sequence[str], *, aliases: dict[str, str] | None = None, salvage: bool = True
) -> ParseResult:
    """Parse one teacher answer into relation items.

    Args:
        text: the message content or function-call arguments (``None`` or blank → method ``empty``).
        keys: the argument keys every item must have, e.g. ``("drug", "ade")``; items come back in this order.
        aliases: extra accepted spellings → key (e.g. entity labels ``{"DRUG": "drug"}``).
        salvage: allow the pair scan (step 4) when no JSON value parses.

    Returns:
        A :class:`ParseResult`; never raises on bad text.
    """
    keys = tuple(keys)
    keymap = _key_map(keys, aliases)
    if text is None or not text.strip():
        return ParseResult(method="empty")
    error: str | None = None
    obj: Any = None
    method: ParseMethod = "json"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        error = f"{err.msg} at line {err.lineno} column {err.colno}"
        obj = None
        for cand in _candidates(text):
            try:
                obj = json.loads(cand)
                method = "extracted"
                break
            except json.JSONDecodeError:
                pass
            try:
                obj = _repair(cand)
                method = "repaired"
                break
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                pass
        if obj is None:
            try:
                obj = _repair(text.strip())
                method = "repaired"
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                obj = None
    raw = _find_items(obj, keymap) if obj is not None else None
    if raw is not None:
        items, incomplete = _normalize(raw, keys, keymap)
        items, dups = _dedupe(items, keys)
        return ParseResult(tuple(items), method, incomplete, dups, error)
    if salvage:
        items, incomplete = _salvage(text, keys, keymap)
        items, dups = _dedupe(items, keys)
        if items or incomplete:
            return ParseResult(tuple(items), "salvaged", incomplete, dups, error)
    return ParseResult((), "failed", 0, 0, error or "no JSON value found")
