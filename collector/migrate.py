"""Applies the numbered DDL migrations of ``tracetape.schemas.ddl``.

Each migration runs once and is recorded in ``schema_migrations`` with its
checksum; running the whole set again changes nothing. A recorded migration
whose file has since changed is refused rather than silently skipped.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tracetape.schemas import ddl
from tracetape.schemas.errors import StoreError

__all__ = ["apply_migrations"]


def apply_migrations(client: Any, database: str) -> list[int]:
    """Bring *database* up to date; returns the versions applied by this call."""
    for statement in ddl.statements(ddl.bootstrap(), database):
        client.command(statement)
    applied = {
        int(row[0]): str(row[1])
        for row in client.query(f"SELECT version, checksum FROM {ddl.check_identifier(database)}.schema_migrations "
                                "FINAL").result_rows
    }
    done = []
    for migration in ddl.migrations():
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                raise StoreError(f"migration {migration.version:04d}_{migration.name} was edited after it was "
                                 "applied; add a new migration instead")
            continue
        for statement in ddl.statements(migration, database):
            client.command(statement)
        client.insert(f"{database}.schema_migrations",
                      [[migration.version, migration.name, migration.checksum, dt.datetime.now(dt.timezone.utc)]],
                      column_names=["version", "name", "checksum", "applied_at"])
        done.append(migration.version)
    return done
