-- Spans, runs and content-addressed blobs.
--
-- Every table is a ReplacingMergeTree keyed by the identity of what it holds,
-- versioned by the collector's ingest sequence: a span or blob sent twice
-- (client retry) collapses to one row. Readers never rely on background
-- merges for that: they read with FINAL (cheap here, since the hot read is a
-- single run, i.e. a primary-key prefix).

-- One row per span. The ORDER BY serves the hot read "one run in step order".
CREATE TABLE IF NOT EXISTS {database}.spans
(
    project         LowCardinality(String),
    run_id          String,
    seq             UInt64,                     -- tracetape.seq; 0 for spans from other instrumentations
    trace_id        String,                     -- lower-case hex, as in the W3C traceparent
    span_id         String,
    parent_span_id  String,
    name            String,
    kind            LowCardinality(String),     -- tracetape event kind (schemas/events.py)
    span_kind       LowCardinality(String),     -- OTel SpanKind
    service_name    LowCardinality(String),
    start_time      DateTime64(9, 'UTC'),
    end_time        DateTime64(9, 'UTC'),
    duration_ns     UInt64,
    status_code     LowCardinality(String),     -- UNSET | OK | ERROR
    status_message  String,
    operation       LowCardinality(String),     -- gen_ai.operation.name
    provider        LowCardinality(String),     -- gen_ai.provider.name
    request_model   LowCardinality(String),
    response_model  LowCardinality(String),
    tool_name       String,
    tool_call_id    String,
    input_tokens    UInt64,
    output_tokens   UInt64,
    finish_reasons  Array(LowCardinality(String)),
    blobs           Map(String, String),        -- payload role -> sha256 hex
    blob_sizes      Map(String, UInt64),        -- payload role -> byte length
    attributes      Map(String, String),        -- every other attribute; non-strings as JSON
    resource        Map(String, String),
    events          Array(Tuple(time DateTime64(9, 'UTC'), name String, attributes Map(String, String))),
    ingest_seq      UInt64,
    INDEX idx_trace trace_id TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(ingest_seq)
PARTITION BY toYYYYMM(start_time)
ORDER BY (project, run_id, seq, span_id);

-- One row per run, written from the run's root span. Serves "list runs by
-- agent / time / outcome / tag".
CREATE TABLE IF NOT EXISTS {database}.runs
(
    project         LowCardinality(String),
    run_id          String,
    agent           LowCardinality(String),
    service_name    LowCardinality(String),
    trace_id        String,
    start_time      DateTime64(9, 'UTC'),
    end_time        DateTime64(9, 'UTC'),
    outcome         LowCardinality(String),     -- ok | error
    error           String,
    tags            Array(String),
    parent_run_id   String,
    fork_step       UInt64,
    event_count     UInt64,
    error_count     UInt64,
    input_tokens    UInt64,
    output_tokens   UInt64,
    ingest_seq      UInt64,
    INDEX idx_agent agent TYPE set(1024) GRANULARITY 4,
    INDEX idx_start start_time TYPE minmax GRANULARITY 1,
    INDEX idx_tags tags TYPE bloom_filter GRANULARITY 4
)
ENGINE = ReplacingMergeTree(ingest_seq)
ORDER BY (project, run_id);

-- Content-addressed payloads: one row per (project, sha256); the bytes live
-- in 1 MiB chunks so a 40 MB tool output is many small rows, not one giant one.
CREATE TABLE IF NOT EXISTS {database}.blobs
(
    project         LowCardinality(String),
    hash            String,                     -- sha256 hex of the exact bytes
    size            UInt64,
    chunk_count     UInt32,
    content_type    LowCardinality(String),
    created         DateTime64(3, 'UTC'),
    ingest_seq      UInt64
)
ENGINE = ReplacingMergeTree(ingest_seq)
ORDER BY (project, hash);

CREATE TABLE IF NOT EXISTS {database}.blob_chunks
(
    project         LowCardinality(String),
    hash            String,
    chunk           UInt32,
    data            String CODEC(ZSTD(3)),
    ingest_seq      UInt64
)
ENGINE = ReplacingMergeTree(ingest_seq)
ORDER BY (project, hash, chunk);
