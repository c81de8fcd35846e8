-- Runs are derived from their root span inside the engine.
--
-- The collector inserts spans only (ClickHouse converts the OTLP bytes
-- itself); this view writes the run row of every span that is a run's root:
-- kind 'run' and a tracetape.run.id of its own (a span without one gets its
-- trace id as run id). It sees each inserted block once, so deriving runs
-- costs no second parse, and a replayed or retried span yields the same row,
-- which ReplacingMergeTree collapses like the span itself.
CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.runs_from_spans TO {database}.runs AS
SELECT
    project,
    run_id,
    attributes['gen_ai.agent.name'] AS agent,
    service_name,
    trace_id,
    start_time,
    end_time,
    if(attributes['tracetape.run.outcome'] != '', attributes['tracetape.run.outcome'],
       if(status_code = 'ERROR', 'error', 'ok')) AS outcome,
    status_message AS error,
    multiIf(NOT mapContains(attributes, 'tracetape.run.tags'), [],
            isValidJSON(attributes['tracetape.run.tags']) AND startsWith(attributes['tracetape.run.tags'], '['),
            JSONExtract(attributes['tracetape.run.tags'], 'Array(String)'),
            [attributes['tracetape.run.tags']]) AS tags,
    attributes['tracetape.run.parent_id'] AS parent_run_id,
    toUInt64(greatest(0, toInt64OrZero(attributes['tracetape.run.fork_step']))) AS fork_step,
    toUInt64(greatest(0, toInt64OrZero(attributes['tracetape.run.event_count']))) AS event_count,
    toUInt64(greatest(0, toInt64OrZero(attributes['tracetape.run.error_count']))) AS error_count,
    input_tokens,
    output_tokens,
    ingest_seq
FROM {database}.spans
WHERE kind = 'run' AND run_id != trace_id;
