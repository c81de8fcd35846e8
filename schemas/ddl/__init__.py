"""The ClickHouse DDL, as numbered ``NNNN_name.sql`` files read as package data.

``0000_bootstrap.sql`` creates the database and the migration ledger and is
run every time; the others are applied once each, in order, and recorded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

__all__ = ["Migration", "bootstrap", "migrations", "statements", "check_identifier"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_COMMENT = re.compile(r"--[^\n]*")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """Detects a migration edited after it was applied somewhere."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def check_identifier(name: str) -> str:
    """Database names are spliced into DDL (identifiers cannot be bound), so only plain ones pass."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"invalid ClickHouse database name {name!r}: use letters, digits and _")
    return name


def _all() -> list[Migration]:
    found = []
    for entry in resources.files(__name__).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def bootstrap() -> Migration:
    return _all()[0]


def migrations() -> list[Migration]:
    """Versioned migrations after the bootstrap, in order."""
    return [m for m in _all() if m.version > 0]


def statements(migration: Migration, database: str) -> list[str]:
    """The migration's statements with the database name filled in."""
    # Comments go first (they may hold ';'). Our DDL has no '--' inside string literals.
    sql = _COMMENT.sub("", migration.sql)
    sql = sql.replace("{database}", check_identifier(database))
    return [stmt.strip() for stmt in sql.split(";") if stmt.strip()]
