"""Canonical forms of payloads, and readable differences between two of them.

Replay matches a call against the recording by comparing canonical request
bytes, and diff compares runs the same way. Canonical means: JSON with keys
sorted; header-style volatile fields dropped wherever they appear (auth,
request ids, idempotency keys, trace context, ``x-stainless-*``); tool-call
ids renumbered in order of first appearance. Renumbering keeps the structure
(which result answers which call) while ignoring the id values a provider
invents anew on every live call, which is what lets a forked or loose replay
still match later requests. Nothing else is ignored unless the caller names
it: matching never silently approximates.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any, Iterable

__all__ = ["canonical", "canonical_bytes", "parse", "Change", "changes", "describe_changes", "payload_changes",
           "similarity", "VOLATILE_KEYS", "RESPONSE_VOLATILE"]

# Header names (as keys anywhere in a payload) whose values change from call to call or are secrets.
VOLATILE_KEYS = frozenset({
    "authorization", "proxy-authorization", "x-api-key", "api-key", "cookie", "set-cookie",
    "x-request-id", "request-id", "x-client-request-id", "idempotency-key", "x-idempotency-key",
    "date", "traceparent", "tracestate", "baggage", "user-agent", "openai-organization", "openai-project",
    "content-length", "x-amzn-trace-id",
})
_VOLATILE_PREFIXES = ("x-stainless-",)
# Keys whose string values are tool-call ids, in every provider's request shape.
_ID_KEYS = frozenset({"tool_call_id", "tool_use_id", "call_id"})
# Objects whose "id" is a tool-call id: entries of "tool_calls" lists, and typed tool-use blocks.
_TOOL_BLOCK_TYPES = frozenset({"tool_use", "server_tool_use", "mcp_tool_use", "function_call", "tool_call"})
# Model responses: top-level fields minted per call (diff only; never applied to requests).
RESPONSE_VOLATILE = frozenset({"id", "created", "created_at", "system_fingerprint", "request_id"})
_MISSING = object()


def _volatile(key: str, extra: frozenset[str]) -> bool:
    lowered = key.lower()
    return lowered in VOLATILE_KEYS or lowered in extra or lowered.startswith(_VOLATILE_PREFIXES)


class _Canonicalizer:
    def __init__(self, ignore: frozenset[str]) -> None:
        self.ignore = ignore
        self.ids: dict[str, str] = {}

    def tool_id(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value not in self.ids:
            self.ids[value] = f"<tool call {len(self.ids) + 1}>"
        return self.ids[value]

    def walk(self, value: Any, in_tool_calls: bool = False) -> Any:
        if isinstance(value, dict):
            tool_block = in_tool_calls or value.get("type") in _TOOL_BLOCK_TYPES
            out = {}
            for key, item in value.items():
                if _volatile(key, self.ignore):
                    continue
                if key in _ID_KEYS or (key == "id" and tool_block):
                    out[key] = self.tool_id(item)
                else:
                    out[key] = self.walk(item, key == "tool_calls")
            return out
        if isinstance(value, list):
            return [self.walk(item, in_tool_calls) for item in value]
        return value


def canonical(value: Any, ignore: Iterable[str] = (), *, drop_top: Iterable[str] = ()) -> Any:
    """*value* with volatile fields dropped and tool-call ids renumbered.

    *ignore* adds key names to drop anywhere; *drop_top* drops keys of the
    top-level object only (used for model responses' per-call ids).
    """
    result = _Canonicalizer(frozenset(k.lower() for k in ignore)).walk(value)
    if isinstance(result, dict) and drop_top:
        dropped = set(drop_top)
        result = {k: v for k, v in result.items() if k not in dropped}
    return result


def parse(data: bytes) -> Any:
    """The JSON value of *data*, or ``_MISSING`` when it is not JSON."""
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return _MISSING


def canonical_bytes(data: bytes, ignore: Iterable[str] = (), *, drop_top: Iterable[str] = ()) -> bytes:
    """Canonical bytes of a payload: canonical sorted-key JSON, or the bytes themselves when not JSON."""
    value = parse(data)
    if value is _MISSING:
        return data
    return json.dumps(canonical(value, ignore, drop_top=drop_top), sort_keys=True, ensure_ascii=False,
                      separators=(",", ":")).encode()


@dataclass(frozen=True)
class Change:
    """One field that differs: its path ("" for the whole payload), its value in the first payload, in the second."""

    path: str
    before: Any
    after: Any

    @property
    def kind(self) -> str:
        if self.before is _MISSING:
            return "added"
        return "removed" if self.after is _MISSING else "changed"

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "change": self.kind}
        if self.before is not _MISSING:
            data["before"] = self.before
        if self.after is not _MISSING:
            data["after"] = self.after
        return data


def _key(item: Any) -> str:
    return json.dumps(item, sort_keys=True, ensure_ascii=False, default=repr)


def _walk(a: Any, b: Any, path: str, out: list[Change], limit: int) -> None:
    if len(out) >= limit or a == b:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            _walk(a.get(key, _MISSING), b.get(key, _MISSING), f"{path}.{key}" if path else str(key), out, limit)
        return
    if isinstance(a, list) and isinstance(b, list):
        # Align elements by content, so an inserted message reads as one addition, not a cascade.
        matcher = difflib.SequenceMatcher(None, [_key(x) for x in a], [_key(x) for x in b], autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                continue
            for offset in range(max(i2 - i1, j2 - j1)):
                i, j = i1 + offset, j1 + offset
                left = a[i] if i < i2 else _MISSING
                right = b[j] if j < j2 else _MISSING
                _walk(left, right, f"{path}[{i if i < i2 else j}]", out, limit)
        return
    out.append(Change(path, a, b))


def changes(a: Any, b: Any, limit: int = 50) -> list[Change]:
    """Field-by-field differences between two JSON values (paths like ``messages[1].content``)."""
    out: list[Change] = []
    _walk(a, b, "", out, limit)
    return out


def _show(value: Any, width: int) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr) if not isinstance(value, str) else json.dumps(
        value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def describe_changes(found: list[Change], label: str = "", width: int = 160) -> list[str]:
    """One readable line per change: ``label.path: before → after``."""
    lines = []
    for change in found:
        path = change.path if not label else label + ("." if change.path[:1] not in ("", "[") else "") + change.path
        path = path or "(whole payload)"
        before = "(absent)" if change.kind == "added" else _show(change.before, width)
        after = "(absent)" if change.kind == "removed" else _show(change.after, width)
        lines.append(f"{path}: {before} → {after}")
    return lines


def payload_changes(before: bytes, after: bytes, ignore: Iterable[str] = (), *, drop_top: Iterable[str] = (),
                    label: str = "", limit: int = 50) -> list[str]:
    """Readable differences between two payloads: per field for JSON, per line for text, else sizes."""
    a, b = parse(before), parse(after)
    if a is not _MISSING and b is not _MISSING:
        return describe_changes(changes(canonical(a, ignore, drop_top=drop_top),
                                        canonical(b, ignore, drop_top=drop_top), limit), label)
    head = f"{label}: " if label else ""
    try:
        lines = difflib.unified_diff(before.decode().splitlines(), after.decode().splitlines(), lineterm="", n=1)
        return [head + line for line in list(lines)[2:limit + 2]]
    except UnicodeDecodeError:
        at = next((i for i, (x, y) in enumerate(zip(before, after)) if x != y), min(len(before), len(after)))
        return [f"{head}binary payloads differ: {len(before)} vs {len(after)} bytes, first difference at byte {at}"]


def similarity(a: bytes, b: bytes, cap: int = 4096) -> float:
    """0..1 likeness of two payloads (prefixes up to *cap* bytes), for ranking candidates."""
    matcher = difflib.SequenceMatcher(None, a[:cap], b[:cap], autojunk=False)
    return matcher.quick_ratio() if matcher.real_quick_ratio() < 0.2 else matcher.ratio()
