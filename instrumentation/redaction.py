"""Redaction at capture: secrets are removed before anything leaves the process.

Every payload goes through :func:`redact` in ``_payload.attach`` and every
preview attribute through :func:`redact_text` in ``_payload.preview``, before
hashing, so neither the bytes, nor their hash, nor a preview of a secret ever
reach the collector. What is always removed: API keys and bearer tokens by
shape (``sk-...``, ``Bearer ...``, AWS and GitHub keys), values of
credential-named fields (``"api_key": ...``, ``password=...``,
``Authorization: ...``). Users add regexes and hooks for their own PII with
``tracetape.instrument(redact=[...])``, which calls :func:`configure`.

A pattern with a group named ``secret`` has only that group replaced (so the
field name stays readable); otherwise the whole match is. A hook is a callable
``(role, data) -> data`` given the payload role (``request``, ``response``,
``before``, ``preview``, ...). A hook that raises fails closed: the payload is
replaced by a marker rather than recorded unredacted.

Default patterns run only when one of their literal markers occurs in the
data: a substring search is far cheaper than a regex scan over a large
payload, and most payloads contain none of them.

Redacted bytes are what is recorded, hashed and served back during replay.
"""

from __future__ import annotations

import logging
import re
from typing import Callable, Iterable, Pattern

__all__ = ["REDACTED", "MORE_KEY_PATTERNS", "configure", "redact", "redact_text", "rules_in_force", "secret_name"]

_log = logging.getLogger(__name__)

REDACTED = "[REDACTED]"
_FAILED = b"[REDACTION FAILED]"

Hook = Callable[[str, bytes], bytes]

# (markers, regex). A rule's regex runs only if one of its markers occurs in the data; quotes may
# come escaped (``\"``): payloads often hold JSON inside JSON (a tool result in a request). Each
# marker is a regex starting with a literal (a fast substring search) that costs one scan of every
# payload, so there are few and they are specific, and together they find every start of a match.
# Markers are case-sensitive: case-insensitive rules list the spellings met in practice.
_DEFAULTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("sk-",), r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_\-]{16,}"),
    (("earer",), r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/=\-]{8,})"),
    (("uthoriz",),
     r"(?i)(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?P<secret>[^\"'\r\n]{4,})"),
    (("A[KS]IA",), r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    (("gh[pousr]_", "github_pat_"), r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_\w{30,})"),
    (("pi_key", "pi-key", "piKey", "PI_KEY", "assword", "ecret"),
     r"(?i)(?:api[_-]?key|secret|password)(?:\\?[\"'])?\s*[:=]\s*(?:\\?[\"'])?(?P<secret>[^\"'\\\s,;&}]{4,})"),
)
# Further vendor key shapes, off by default (each marker is a scan of every payload):
# ``tracetape.instrument(redact=[*redaction.MORE_KEY_PATTERNS, ...])``.
MORE_KEY_PATTERNS: tuple[str, ...] = (
    r"\bAIza[0-9A-Za-z_\-]{35}",  # Google API keys
    r"\bxox[abprs]-[A-Za-z0-9-]{10,}",  # Slack tokens
    r"\bsk_live_[0-9A-Za-z]{16,}",  # Stripe secret keys
    r"\brk_live_[0-9A-Za-z]{16,}",  # Stripe restricted keys
    r"\bhf_[A-Za-z]{30,}",  # Hugging Face tokens
)
_LITERAL_START = re.compile(r"^(?:\\b)?([A-Za-z0-9_\-]{2,})(.?)")
_SECRET_NAME = re.compile(r"(?i)(key|token|secret|passw|credential|auth|private|session|cookie|signature)")


def _literal_prefix(pattern: str | Pattern[str]) -> tuple[str, ...]:
    """The literal text every match of a user's pattern starts with, as its marker (none if unsure).

    Returned escaped, as a regex: markers are regexes (see ``_DEFAULTS``)."""
    if isinstance(pattern, re.Pattern):
        if pattern.flags & re.IGNORECASE:
            return ()
        pattern = pattern.pattern
    found = _LITERAL_START.match(pattern)
    if found is None or "|" in pattern:  # an alternative may start differently
        return ()
    literal = found.group(1)
    if found.group(2) in ("*", "?", "{", "+"):  # the last character is quantified: not always there
        literal = literal[:-1]
    return (re.escape(literal),) if len(literal) >= 2 else ()


class _Rule:
    """One pattern, compiled for text (previews) and bytes (payloads)."""

    __slots__ = ("text", "binary", "markers", "binary_markers", "marker_text", "grouped")
    # Markers are compiled patterns that start with a literal: as fast as ``in`` for short needles.

    def __init__(self, pattern: str | Pattern[str], markers: tuple[str, ...] = ()) -> None:
        source = pattern.pattern if isinstance(pattern, re.Pattern) else pattern
        flags = pattern.flags if isinstance(pattern, re.Pattern) else 0
        self.text = re.compile(source, flags)
        self.binary = re.compile(source.encode("utf-8"), flags & ~re.UNICODE)
        self.marker_text = markers
        self.markers = tuple(re.compile(m).search for m in markers)
        self.binary_markers = tuple(re.compile(m.encode("utf-8")).search for m in markers)
        self.grouped = "secret" in self.text.groupindex

    def apply_text(self, text: str) -> str:
        if self.markers and not any(found(text) for found in self.markers):
            return text
        return self.text.sub(self._replace_text if self.grouped else REDACTED, text)

    def apply_bytes(self, data: bytes) -> bytes:
        if self.binary_markers and not any(found(data) for found in self.binary_markers):
            return data
        return self.binary.sub(self._replace_bytes if self.grouped else REDACTED.encode(), data)

    @staticmethod
    def _replace_text(match: re.Match[str]) -> str:
        start, end = match.span("secret")
        whole = match.group(0)
        return whole[: start - match.start()] + REDACTED + whole[end - match.start():]

    @staticmethod
    def _replace_bytes(match: re.Match[bytes]) -> bytes:
        start, end = match.span("secret")
        whole = match.group(0)
        return whole[: start - match.start()] + REDACTED.encode() + whole[end - match.start():]


class _RuleSet:
    """The rules in force, with one alternation of every marker for short data, and a memo of clean payloads.

    A short payload (tool arguments, a preview, a header) costs more in the
    per-rule calls than in scanning; one search for any marker usually clears
    it at once. Long data is scanned marker by marker (literal searches beat
    one alternation there), so the gate only applies below :data:`_GATE_BYTES`.

    Long data is what repeats: an agent resends its whole conversation with
    every model call, so a request is the previous one with new turns between
    the same start (system prompt, history) and the same end (tool
    definitions, parameters). Up to :data:`_MEMO_ENTRIES` recent payloads in
    which no marker occurs are remembered; of a new payload that shares a
    start and an end with one, only the changed middle is scanned for markers,
    widened on both sides by the longest marker so that one across a seam is
    still found. Scanning stays proportional to what is new, not to the length
    of the conversation. When a marker is found, every rule runs on the whole
    payload, as without the memo. A rule without markers (a user pattern with
    no literal start) runs on everything anyway, so then nothing is skipped.
    """

    __slots__ = ("rules", "unmarked", "gate_text", "gate_bytes", "marked_bytes", "margin", "clean")

    def __init__(self, rules: tuple[_Rule, ...]) -> None:
        self.rules = rules
        self.unmarked = tuple(rule for rule in rules if not rule.markers)
        markers = sorted({m for rule in rules for m in rule.marker_text})
        alternation = "|".join(markers)
        self.gate_text = re.compile(alternation).search if markers else None
        self.gate_bytes = re.compile(alternation.encode("utf-8")).search if markers else None
        self.marked_bytes = tuple(found for rule in rules for found in rule.binary_markers)
        # Markers are literals and character classes, never quantified: no match is longer than its source.
        self.margin = max(map(len, markers), default=0)
        self.clean: tuple[bytes, ...] = ()

    def for_text(self, text: str) -> tuple[_Rule, ...]:
        gate = self.gate_text
        if gate is not None and len(text) <= _GATE_BYTES and gate(text) is None:
            return self.unmarked
        return self.rules

    def for_bytes(self, data: bytes) -> tuple[_Rule, ...]:
        gate = self.gate_bytes
        if gate is None or self.unmarked:
            return self.rules
        if len(data) <= _GATE_BYTES:
            return self.unmarked if gate(data) is None else self.rules
        unseen = self._unseen(data)
        if any(found(unseen) for found in self.marked_bytes):
            return self.rules
        if len(data) <= _MEMO_BYTES:
            self.clean = (data,) + tuple(seen for seen in self.clean[:_MEMO_ENTRIES - 1] if seen is not data)
        return self.unmarked

    def _unseen(self, data: bytes) -> bytes:
        """The part of *data* that no remembered clean payload vouches for (all of it, if none shares its start)."""
        head = data[:_HEAD_BYTES]
        for seen in self.clean:
            if seen.startswith(head):
                start = common_prefix(seen, data)
                end = len(data) - common_suffix(seen, data, min(len(seen), len(data)) - start)
                return data[max(0, start - self.margin):end + self.margin]
        return data


def common_prefix(a: bytes, b: bytes) -> int:
    """How many leading bytes *a* and *b* share: a binary search of C-speed comparisons, no copies."""
    low, high = 0, min(len(a), len(b))
    view = memoryview(a)
    if b.startswith(view[:high]):  # the same payload again: one comparison
        return high
    while low < high:
        middle = (low + high + 1) // 2
        if b.startswith(view[low:middle], low):
            low = middle
        else:
            high = middle - 1
    return low


def common_suffix(a: bytes, b: bytes, limit: int) -> int:
    """How many trailing bytes *a* and *b* share, at most *limit*."""
    low, high = 0, limit
    view, end_a, end_b = memoryview(a), len(a), len(b)
    if b.startswith(view[end_a - high:end_a], end_b - high):
        return high
    while low < high:
        middle = (low + high + 1) // 2
        if b.startswith(view[end_a - middle:end_a - low], end_b - middle):
            low = middle
        else:
            high = middle - 1
    return low


_GATE_BYTES = 512
_HEAD_BYTES = 64  # a remembered payload is compared with one that starts the same
_MEMO_ENTRIES = 4
_MEMO_BYTES = 1 << 20  # larger payloads are not remembered: the memo holds at most 4 MiB
_defaults = tuple(_Rule(pattern, markers) for markers, pattern in _DEFAULTS)
_rules = _RuleSet(_defaults)
_hooks: tuple[Hook, ...] = ()


def configure(patterns: Iterable[str | Pattern[str]] = (), hooks: Iterable[Hook] = ()) -> None:
    """Set the user's redaction rules (they replace earlier ones; the built-in ones always apply).

    *patterns*: regexes (``str`` or compiled ``str`` patterns) whose matches
    are replaced by ``[REDACTED]`` (only group ``secret`` if the pattern has
    one). *hooks*: callables ``(role, data: bytes) -> bytes``.
    """
    global _rules, _hooks
    user = tuple(_Rule(p, _literal_prefix(p)) for p in patterns)
    _rules = _RuleSet(_defaults + user)
    _hooks = tuple(hooks)


def rules_in_force() -> object:
    """A token of the rules in force, a new one at every :func:`configure`: what was redacted under another
    token must be redacted again."""
    return _rules


def redact(role: str, data: bytes) -> bytes:
    """*data* with every secret the rules know removed; what gets recorded as payload *role*."""
    for rule in _rules.for_bytes(data):
        data = rule.apply_bytes(data)
    for hook in _hooks:
        try:
            data = bytes(hook(role, data))
        except Exception as exc:  # noqa: BLE001 - a broken hook must not leak the payload nor break the host
            _log.warning("tracetape redaction hook %r failed (%r); payload %r withheld", hook, exc, role)
            return _FAILED
    return data


def redact_text(text: str, role: str = "preview") -> str:
    """The text form of :func:`redact`, for previews and other attributes."""
    if _hooks:
        return redact(role, text.encode("utf-8", "surrogatepass")).decode("utf-8", "replace")
    for rule in _rules.for_text(text):
        text = rule.apply_text(text)
    return text


def secret_name(name: str) -> bool:
    """Whether a header or variable *name* suggests its value is a credential."""
    return _SECRET_NAME.search(name) is not None
