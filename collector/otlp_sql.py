"""The engine side of OTLP conversion: ClickHouse parses the spans itself.

Profiling the collector showed where a span's time goes: a Python walk over
every attribute costs ~20 µs per span before a single row is written, more
than the whole budget at 40,000 spans/s. ClickHouse reads Protobuf natively
and transforms columns in vectorized C++, so the collector hands it the spans'
wire bytes, each export request wrapped in an envelope that carries the
project and the ingest sequence, and one ``INSERT … SELECT`` turns a whole
batch of requests into ``spans`` rows. ``runs`` rows follow from a
materialized view on ``spans`` (schemas/ddl/0002), so they cost no second parse.

The envelope holds one ``Row`` (resource, span) per span, cut from the request
by ``convert.envelope`` without decoding it, rather than the request itself:
unnesting one repeated level instead of three (resource spans, scope spans,
spans) measured ~4 µs per span cheaper here, for ~1 µs of slicing in Python.

Measured on the 2-core machine (``perf`` of the collector under
bench/ingest.py, and each stage timed alone on the benchmark's spool
segments): ClickHouse spends ~6 µs per span parsing, ~10 µs converting and
~7 µs writing the part (compact parts, schemas/ddl/0004; ~1 µs of it the
``runs`` view), plus 75–100 ms of planning per INSERT whatever its size, which
is why the writer loads up to 24 MB of requests per INSERT. What keeps the
conversion that cheap:

* Requests are described as *flat* columns (one per leaf field path, arrays of
  arrays for the repeated levels), never as nested ``Tuple`` types: lambdas
  over tuple columns ran ~4x slower.
* No lambda captures an outer array column: ClickHouse replicates a captured
  column for every element mapped, so looking up the typed attributes through
  one lambda over their names copied every attribute value 14 times.
* Typed attributes are found once per span (``indexOf``) and read by position.

Every row of one export request carries the same ``ingest_seq`` (one value of
the collector's sequence per request).

:data:`PROTO_SCHEMA` is a wire-compatible subset of OTLP's trace protos (the
field numbers match; fields we do not store are unknown to ClickHouse and
skipped). How values become text is documented in ``convert.py``.
"""

from __future__ import annotations

import functools

__all__ = ["PROTO_SCHEMA", "MESSAGE", "TYPED_ATTRIBUTES", "input_structure", "format_settings", "select_spans",
           "insert_from_files", "insert_from_input"]

MESSAGE = "Envelope"
PROTO_SCHEMA = """
syntax = "proto3";
message Envelope { string project = 1; uint64 ingest_seq = 2; bool span_project = 3; repeated Row rows = 5; }
message Row { Resource resource = 1; Span span = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { repeated Span spans = 2; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; bytes parent_span_id = 4; string name = 5; int32 kind = 6;
  fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8; repeated KeyValue attributes = 9;
  repeated Event events = 11; Status status = 15;
}
message Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
message Status { string message = 2; int32 code = 3; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof kind {
    string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4;
    ArrayValue array_value = 5; bytes kvlist_value = 6; bytes bytes_value = 7;
  }
}
message ArrayValue { repeated Leaf values = 1; }
message Leaf {
  oneof kind {
    string string_value = 1; bool bool_value = 2; int64 int_value = 3; double double_value = 4;
    bytes array_value = 5; bytes kvlist_value = 6; bytes bytes_value = 7;
  }
}
"""

# Attributes that become typed columns of ``spans`` and are not repeated in its ``attributes`` map.
TYPED_ATTRIBUTES = (
    "tracetape.run.id", "tracetape.seq", "tracetape.project", "tracetape.event.kind", "gen_ai.operation.name",
    "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.model", "gen_ai.tool.name",
    "gen_ai.tool.call.id", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
    "gen_ai.response.finish_reasons",
)
_EVENT_KINDS = ("run", "model_call", "tool_call", "http", "file_read", "file_write", "clock", "random", "uuid",
                "subprocess", "environment", "memory", "other")
_MODEL_OPERATIONS = ("chat", "text_completion", "generate_content", "embeddings")
_BLOB, _BLOB_SIZE = "tracetape.blob.", "tracetape.blob_size."

_KIND = ("Enum8('none' = 0, 'string' = 1, 'bool' = 2, 'int' = 3, 'double' = 4, 'array' = 5, 'kvlist' = 6, "
         "'bytes' = 7)")
# Fields of an AnyValue: (proto field, one-letter name used in SQL, ClickHouse type). A Leaf (array
# element) has the same plus its nested array as raw bytes.
_VALUE = (("kind", "k", _KIND), ("string_value", "s", "String"), ("int_value", "i", "Int64"),
          ("double_value", "d", "Float64"), ("bool_value", "b", "Bool"), ("bytes_value", "y", "String"),
          ("kvlist_value", "v", "String"))
_LEAF = _VALUE[:5]
_SPAN = (("trace_id", "String"), ("span_id", "String"), ("parent_span_id", "String"), ("name", "String"),
         ("kind", "Int32"), ("start_time_unix_nano", "UInt64"), ("end_time_unix_nano", "UInt64"),
         ("status_message", "String"), ("status_code", "Int32"))
_SPANS = "rows_span"


def _nest(depth: int, type_: str) -> str:
    return "Array(" * depth + type_ + ")" * depth


def _kv_columns(path: str, group: str, depth: int) -> list[tuple[str, str, str]]:
    """(input column, SQL name, type) for a ``repeated KeyValue`` reached through *depth* repeated levels."""
    cols = [(f"{path}_key", f"{group}_key", _nest(depth, "String"))]
    cols += [(f"{path}_value_{field}", f"{group}_{c}", _nest(depth, t)) for field, c, t in _VALUE]
    cols += [(f"{path}_value_array_value_values_{field}", f"{group}_l{c}", _nest(depth + 1, t)) for field, c, t in _LEAF]
    return cols


_RESOURCE = _kv_columns("rows_resource_attributes", "res", 2)
_PER_SPAN = (
    [(f"{_SPANS}_{f}", f"span_{f}", _nest(1, t)) for f, t in _SPAN]
    + _kv_columns(f"{_SPANS}_attributes", "attr", 2)
    + [(f"{_SPANS}_events_time_unix_nano", "ev_time", _nest(2, "UInt64")),
       (f"{_SPANS}_events_name", "ev_name", _nest(2, "String"))]
    + _kv_columns(f"{_SPANS}_events_attributes", "evattr", 3)
)


def input_structure() -> str:
    """The columns ClickHouse reads an envelope stream into (names follow the proto field paths)."""
    cols = [("project", "String"), ("ingest_seq", "UInt64"), ("span_project", "Bool")]
    cols += [(name, type_) for name, _, type_ in _RESOURCE + _PER_SPAN]
    return ", ".join(f"{name} {type_}" for name, type_ in cols)


def format_settings(schema_file: str | None = None) -> dict[str, str]:
    """Settings that make ClickHouse read the envelope stream with :data:`PROTO_SCHEMA`.

    With *schema_file* (an absolute path holding :data:`PROTO_SCHEMA`; chDB reads it where it is) the
    schema comes from that file; without, it is sent inline, which a server caches in its own
    directory but chDB would cache in the process's working directory.
    """
    source = {"format_schema": schema_file} if schema_file else \
        {"format_schema_source": "string", "format_schema": PROTO_SCHEMA}
    return {
        **source, "format_schema_message_name": MESSAGE, "input_format_protobuf_oneof_presence": "1",
        # A request may carry spans from many months; that must not fail the batch it is in.
        "throw_on_max_partitions_per_insert_block": "0",
    }


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _texts(args: list[str]) -> str:
    """Array(String) of attribute values as text; *args* are the value arrays then the leaf arrays.

    Arrays render as JSON through ``toJSONString`` of the leaf array of their element type (OTLP
    attribute arrays are homogeneous); a mixed array keeps its string elements.
    """
    p = dict(zip([f"x{c}" for _, c, _ in _VALUE] + [f"xl{c}" for _, c, _ in _LEAF], args))
    array = ("multiIf(empty(xlk) OR xlk[1] = 'string', toJSONString(xls), xlk[1] = 'int', toJSONString(xli), "
             "xlk[1] = 'double', toJSONString(xld), xlk[1] = 'bool', toJSONString(xlb), toJSONString(xls))")
    body = ("multiIf(xk = 'string', xs, xk = 'int', toString(xi), xk = 'double', toString(xd), "
            f"xk = 'bool', if(xb, 'true', 'false'), xk = 'array', {array}, xk = 'bytes', lower(hex(xy)), "
            "xk = 'kvlist', concat('{\"otlp.kvlist.base64\":\"', base64Encode(xv), '\"}'), '')")
    return f"arrayMap(({', '.join(p)}) -> {body}, {', '.join(p.values())})"


def _value_args(group: str) -> list[str]:
    return [f"{group}_{c}" for _, c, _ in _VALUE] + [f"{group}_l{c}" for _, c, _ in _LEAF]


# Attributes read by name: each position is found once per span (``i1``, ``i2``, …). Not with one
# lambda over the names: a lambda that captures ``vals`` copies it for every name it maps.
_LOOKUP = TYPED_ATTRIBUTES + ("gen_ai.system",)


def _get(name: str) -> str:
    return f"vals[i{_LOOKUP.index(name) + 1}]"


def _uint(text: str) -> str:
    return f"toUInt64(greatest(0, toInt64OrZero({text})))"


def _is_string(name: str) -> str:
    return f"attr_k[i{_LOOKUP.index(name) + 1}] = 'string'"


def select_spans(source: str) -> str:
    """``SELECT`` of ``spans`` rows (in table column order) from an envelope stream read by *source*."""
    rows = ", ".join(f"{name} AS {sql}" for name, sql, _ in _PER_SPAN + _RESOURCE)
    event_params = [f"q{c}" for _, c, _ in _VALUE] + [f"ql{c}" for _, c, _ in _LEAF]
    event_texts = (f"arrayMap(({', '.join(event_params)}) -> {_texts(event_params)}, "
                   f"{', '.join(_value_args('evattr'))})")
    finish = _get("gen_ai.response.finish_reasons")
    finish = (f"multiIf({_is_string('gen_ai.response.finish_reasons').replace('string', 'array')}, "
              f"JSONExtract({finish}, 'Array(String)'), {finish} = '', [], [{finish}])")
    positions = ", ".join(f"indexOf(keys, {_quote(name)}) AS i{n}" for n, name in enumerate(_LOOKUP, 1))
    typed = "(" + ", ".join(_quote(name) for name in TYPED_ATTRIBUTES) + ")"
    kinds = "(" + ", ".join(_quote(k) for k in _EVENT_KINDS) + ")"
    models = "(" + ", ".join(_quote(k) for k in _MODEL_OPERATIONS) + ")"
    project = _get("tracetape.project")
    res_project = "res_vals[indexOf(res_key, 'tracetape.project')]"
    return f"""
SELECT
  if(span_project AND {project} != '', {project},
     if(span_project AND {res_project} != '', {res_project}, project)) AS project,
  if({_get('tracetape.run.id')} != '', {_get('tracetape.run.id')}, trace_id) AS run_id,
  {_uint(_get('tracetape.seq'))} AS seq,
  trace_id,
  lower(hex(span_span_id)) AS span_id,
  lower(hex(span_parent_span_id)) AS parent_span_id,
  span_name AS name,
  multiIf({_is_string('tracetape.event.kind')}, if({_get('tracetape.event.kind')} IN {kinds},
                                                 {_get('tracetape.event.kind')}, 'other'),
          NOT {_is_string('gen_ai.operation.name')}, if(has(keys, 'http.request.method') OR has(keys, 'http.method'),
                                                         'http', 'other'),
          op IN {models}, 'model_call', op = 'execute_tool', 'tool_call', op = 'invoke_agent', 'run',
          has(keys, 'http.request.method') OR has(keys, 'http.method'), 'http', 'other') AS kind,
  ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'][
      if(span_kind BETWEEN 0 AND 5, span_kind + 1, 1)] AS span_kind,
  res_vals[indexOf(res_key, 'service.name')] AS service_name,
  fromUnixTimestamp64Nano(toInt64(span_start_time_unix_nano), 'UTC') AS start_time,
  fromUnixTimestamp64Nano(toInt64(greatest(span_end_time_unix_nano, span_start_time_unix_nano)), 'UTC') AS end_time,
  greatest(span_end_time_unix_nano, span_start_time_unix_nano) - span_start_time_unix_nano AS duration_ns,
  ['UNSET', 'OK', 'ERROR'][if(span_status_code BETWEEN 0 AND 2, span_status_code + 1, 1)] AS status_code,
  span_status_message AS status_message,
  op AS operation,
  if({_get('gen_ai.provider.name')} != '', {_get('gen_ai.provider.name')}, {_get('gen_ai.system')}) AS provider,
  {_get('gen_ai.request.model')} AS request_model,
  {_get('gen_ai.response.model')} AS response_model,
  {_get('gen_ai.tool.name')} AS tool_name,
  {_get('gen_ai.tool.call.id')} AS tool_call_id,
  {_uint(_get('gen_ai.usage.input_tokens'))} AS input_tokens,
  {_uint(_get('gen_ai.usage.output_tokens'))} AS output_tokens,
  {finish} AS finish_reasons,
  mapFromArrays(arrayMap(k -> substring(k, {len(_BLOB) + 1}), arrayFilter((k, c) -> c = 1, keys, cls)),
                arrayFilter((v, c) -> c = 1, vals, cls)) AS blobs,
  mapFromArrays(arrayMap(k -> substring(k, {len(_BLOB_SIZE) + 1}), arrayFilter((k, c) -> c = 2, keys, cls)),
                arrayMap(v -> {_uint('v')}, arrayFilter((v, c) -> c = 2, vals, cls))) AS blob_sizes,
  mapFromArrays(arrayFilter((k, c) -> c = 0, keys, cls), arrayFilter((v, c) -> c = 0, vals, cls)) AS attributes,
  mapFromArrays(res_key, res_vals) AS resource,
  arrayMap((t, n, ks, vs) -> (fromUnixTimestamp64Nano(toInt64(t), 'UTC'), n, mapFromArrays(ks, vs)),
           ev_time, ev_name, evattr_key, ev_vals) AS events,
  ingest_seq
FROM (
  SELECT *,
    arrayMap(k -> multiIf(startsWith(k, {_quote(_BLOB)}), 1, startsWith(k, {_quote(_BLOB_SIZE)}), 2,
                          k IN {typed}, 3, 0), keys) AS cls,
    {positions},
    if({_is_string('gen_ai.operation.name')}, {_get('gen_ai.operation.name')}, '') AS op
  FROM (
    SELECT project, ingest_seq, span_project, res_key,
      {', '.join(f'span_{f}' for f, _ in _SPAN if f != 'trace_id')},
      lower(hex(span_trace_id)) AS trace_id,
      attr_key AS keys, attr_k,
      {_texts(_value_args('attr'))} AS vals,
      {_texts(_value_args('res'))} AS res_vals,
      ev_time, ev_name, evattr_key,
      if(empty(ev_time), [], {event_texts}) AS ev_vals
    FROM {source}
    ARRAY JOIN {rows}
  )
)
"""


# ``optimize_on_insert`` 0: ReplacingMergeTree would collapse rows with the same key within each inserted
# block, which no reader needs (reads use FINAL) and which cost the INSERT another copy of the block:
# measured in chDB on 32 MB of envelopes, the INSERT's peak fell from 98 to 80 MB and its time by ~15%.
# ``storage_file_read_method`` pread: chDB (clickhouse-local) maps a ``file()`` into memory by default, so
# the spool segments an INSERT read counted in the collector's resident memory (two inserts of 32 MB: up
# to 64 MB more, measured as mapped-file RSS); read into small buffers instead, they cost nothing resident.
_INSERT_SETTINGS = {"optimize_on_insert": "0", "storage_file_read_method": "pread"}


@functools.lru_cache(maxsize=8)
def insert_from_files(database: str, pattern: str, schema_file: str) -> str:
    """INSERT of the envelope files matching *pattern* (a chDB-local path or glob).

    Single-threaded: the collector runs one such INSERT per core, which measured faster than one
    INSERT on every core. The engine holds ~2.7x the INSERT's input at its peak (64 MB for 21 MB of
    envelopes, 112 MB for 42 MB: the rows of the whole INSERT are gathered into one part before it is
    written), whatever the read block size (2 to 65,409 requests measured the same).
    """
    source = f"file({_quote(pattern)}, 'Protobuf', {_quote(input_structure())})"
    settings = {**format_settings(schema_file), **_INSERT_SETTINGS, "max_threads": "1", "max_insert_threads": "1",
                "max_block_size": "8"}
    clause = ", ".join(f"{key} = {_quote(value)}" for key, value in settings.items())
    return f"INSERT INTO {database}.spans {select_spans(source)} SETTINGS {clause}"


@functools.lru_cache(maxsize=2)
def insert_from_input(database: str) -> str:
    """INSERT of an envelope stream sent as the request body (a ClickHouse server over HTTP).

    Send it with :func:`format_settings` as query settings.
    """
    return f"INSERT INTO {database}.spans {select_spans(f'input({_quote(input_structure())})')} FORMAT Protobuf"
