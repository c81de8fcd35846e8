"""What a caller of the SQL endpoint may run, and which rows it sees.

chDB has no users, grants or row policies, and ``readonly=1`` alone is not a
read-only *project* view: it still lets a SELECT read raw store files
(``file()``), every project's rows through ``merge()`` or ``mergeTreeIndex()``,
other callers' queries (``system.processes``), write files (``INTO OUTFILE``)
and kill queries (``KILL QUERY``), and chDB runs several statements sent as
one. So every caller's query goes through two layers, both built on
ClickHouse's own parser and planner rather than on pattern matching:

1. **Row filter in storage.** Each project gets its own connections, on which
   ``additional_table_filters`` restricts every tracetape table that has a
   ``project`` column to ``project = <that project>`` (hex-encoded, so the name
   is never quoted into SQL), set *before* ``readonly=1``, which then forbids
   the caller to change or clear it (also in a query's SETTINGS clause).
   ClickHouse applies it wherever the table is read: joins, subqueries, CTEs,
   ``IN table``, views, FINAL, PREWHERE, scalar subqueries — like a row policy.
2. **Statement gate.** :meth:`Scope.check` has ClickHouse parse the text
   (``formatQuerySingleLine`` of a query *parameter*, so no caller text is ever
   spliced into our SQL): exactly one statement, and its canonical text is what
   then runs. ``EXPLAIN AST`` of that text (which executes nothing) lists every
   node; the gate accepts only read statements, no ``INTO OUTFILE``, no function
   that reads outside the filtered tables (``file``, ``dictGet*``, ``joinGet``,
   any table function but a few generators), and, for a project caller, no
   table but the filtered tracetape tables, ``schema_migrations`` and metadata
   tables (``system.tables``, ``system.columns``, ``information_schema``...).

Layer 2 closes the paths that layer 1 cannot see (table functions, system
tables, files); layer 1 makes the row restriction independent of how a query
names a table. What a project caller can still learn about others is metadata:
table definitions and whole-table sizes in ``system.tables`` / ``columns``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Scope", "ScopeRefusal", "scope_settings"]

READONLY, ACCESS_DENIED = (164, "READONLY"), (497, "ACCESS_DENIED")
# Roots of statements that only read. Set and Use go to the engine, which refuses any change under readonly=1.
_READ_ROOTS = frozenset({"SelectWithUnionQuery", "ShowTables", "ShowColumns", "DescribeQuery",
                         "ShowCreateTableQuery", "ShowCreateDatabaseQuery", "ShowCreateViewQuery",
                         "ExistsTableQuery", "ExistsDatabaseQuery", "ExistsViewQuery", "Set", "UseQuery"})
_TABLE_FUNCTIONS_ALLOWED = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "generateSeries",
                                      "generate_series", "values", "null", "primes", "format", "generateRandom"})
_FUNCTIONS_DENIED = frozenset({"file", "joinGet", "joinGetOrNull", "catboostEvaluate", "fuzzQuery"})
_METADATA_TABLES = frozenset({
    "one", "numbers", "numbers_mt", "zeros", "zeros_mt", "primes", "databases", "tables", "columns", "functions",
    "table_functions", "settings", "formats", "data_type_families", "time_zones", "table_engines", "build_options",
    "collations", "contributors", "keywords", "aggregate_function_combinators", "licenses", "merge_tree_settings",
    "data_skipping_indices", "codecs", "database_engines",
})
_SCHEMA_DBS = frozenset({"information_schema", "INFORMATION_SCHEMA"})
_PUBLIC_TABLES = frozenset({"schema_migrations"})  # tracetape tables without project data
_NAME = re.compile(r"[A-Za-z0-9_]+\Z")
_CHILDREN = re.compile(r" \(children (\d+)\)\Z")
_DEPTH_ONE = re.compile(r" \S")
_LINE = re.compile(r"( *)(\w+)(?: (.*?))?(?: \(alias .*?\))?(?: \(children \d+\))?\Z")


class ScopeRefusal(Exception):
    """A query the gate refuses, worded the way ClickHouse words the same refusal."""

    def __init__(self, code: tuple[int, str], message: str) -> None:
        super().__init__(f"Code: {code[0]}. DB::Exception: {message}. ({code[1]})")


def _escape_param(text: str) -> str:
    # Query parameters arrive in ClickHouse's escaped text format.
    return (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
            .replace("\0", "\\0"))


def _text(conn: Any, sql: str, params: dict[str, str] | None = None) -> str:
    return conn.query(sql, "TSVRaw", params=params or None).bytes().decode("utf-8", "replace")


def scope_settings(conn: Any, database: str, project: str) -> tuple[str, frozenset[str]]:
    """The ``SET additional_table_filters`` statement confining *conn* to *project*, and the tables it covers."""
    rows = _text(conn, "SELECT DISTINCT table FROM system.columns WHERE database = {db:String} "
                       "AND name = 'project'", {"db": _escape_param(database)}).split("\n")
    tables = frozenset(t for t in rows if _NAME.match(t))
    if not _NAME.match(database) or not tables:
        raise ScopeRefusal(ACCESS_DENIED, f"database {database!r} has no tables that can be scoped to a project")
    condition = f"project = unhex(\\'{project.encode().hex()}\\')"
    filters = ", ".join(f"'{database}.{table}': '{condition}'" for table in sorted(tables))
    return f"SET additional_table_filters = {{{filters}}}", tables


@dataclass
class Scope:
    """The gate for one connection: *filtered* tables of *database* are row-filtered to a project.

    ``filtered=None`` means an unscoped caller (authentication disabled): every table is readable,
    but the statement rules (one read-only statement, no files, no table functions) still hold.
    """

    database: str
    filtered: frozenset[str] | None = None
    _known: frozenset[tuple[str, str]] = field(default=frozenset(), repr=False)

    def load_catalog(self, conn: Any) -> None:
        rows = _text(conn, "SELECT database, name FROM system.tables").split("\n")
        self._known = frozenset(tuple(r.split("\t", 1)) for r in rows if "\t" in r)  # type: ignore[misc]
        self._table_functions = frozenset(_text(conn, "SELECT name FROM system.table_functions").split("\n"))

    def check(self, conn: Any, sql: str, params: dict[str, str], current_db: str) -> str:
        """Canonical text of *sql* if the caller may run it on *conn*; raises :class:`ScopeRefusal` or the
        engine's own syntax error otherwise."""
        canonical = _text(conn, "SELECT formatQuerySingleLine({q:String})", {"q": _escape_param(sql)}).rstrip("\n")
        lines = _text(conn, f"EXPLAIN AST {canonical}", params).split("\n")
        root = _LINE.match(lines[0])
        if root is None or root.group(2) not in _READ_ROOTS:
            raise ScopeRefusal(READONLY, "Cannot execute query in readonly mode")
        # Fail closed unless the dump is the one-node-per-line tree this gate reads: the root's
        # declared children are exactly the lines one level below it.
        declared = _CHILDREN.search(lines[0])
        if sum(1 for line in lines[1:] if _DEPTH_ONE.match(line)) != (int(declared.group(1)) if declared else 0):
            raise ScopeRefusal(ACCESS_DENIED, "query shape not understood by this endpoint")
        for line in lines[1:]:
            node = _LINE.match(line)
            if node is None:
                continue  # the tail of a multi-line alias: text of the caller, not a node
            depth, kind, name = len(node.group(1)), node.group(2), node.group(3) or ""
            if depth == 1 and kind == "Literal":
                raise ScopeRefusal(READONLY, "Cannot write files (INTO OUTFILE) in readonly mode")
            if kind == "Function":
                self._check_function(name)
            elif kind in ("TableIdentifier", "Identifier") and self.filtered is not None:
                self._check_table(conn, name, current_db, kind == "TableIdentifier")
        return canonical

    def _check_function(self, name: str) -> None:
        if name in _FUNCTIONS_DENIED or name.startswith("dict") or \
                (name in self._table_functions and name not in _TABLE_FUNCTIONS_ALLOWED):
            raise ScopeRefusal(ACCESS_DENIED, f"function {name}() is not available on this endpoint")

    def _allowed(self, db: str, table: str) -> bool:
        if db == self.database:
            return table in (self.filtered or ()) or table in _PUBLIC_TABLES
        return (db == "system" and table in _METADATA_TABLES) or db in _SCHEMA_DBS

    def _check_table(self, conn: Any, name: str, current_db: str, is_table: bool) -> None:
        db, dot, table = name.partition(".")
        if not dot:
            db, table = current_db, name
        if (db, table) in self._known:
            if not self._allowed(db, table):
                raise ScopeRefusal(ACCESS_DENIED, f"table {db}.{table} is not readable with a project token")
            return
        if not is_table:
            return  # a column, alias or lambda argument: names no table
        if dot or _text(conn, "SELECT count() FROM system.tables WHERE database = {d:String} AND name = {t:String}",
                        {"d": _escape_param(db), "t": _escape_param(table)}).strip() != "0":
            # Qualified, or created after the catalog was read: only the known and allowed pass.
            raise ScopeRefusal(ACCESS_DENIED, f"table {name} is not readable with a project token")
        # Otherwise a bare name that is no table: a CTE of this query, or an error the engine reports.
