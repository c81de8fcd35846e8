-- Spans are rebuilt with granules of at most 1 MB, and merged fewer times.
--
-- Measured on the ingest benchmark (400,000 spans of ~2 KB): merging the
-- compact parts of `spans` held up to 280 MB, because a merge reads one
-- granule of every part at once and a granule of 8,192 such spans reaches
-- the default `index_granularity_bytes` of 10 MB; with 1 MB granules the
-- merges held 53-84 MB in most runs, and the collector's peak RSS fell from
-- 930-1,090 MB to 740-860 MB, for the same CPU. That setting cannot be
-- changed on an existing table, so the table is created anew, the rows
-- copied, and the two swapped (EXCHANGE is atomic). `runs_from_spans` reads
-- `spans` by name, so it goes on deriving runs from the new table
-- (tests/collector/test_migrations.py checks it), and the copy, not being an
-- insert into `spans`, derives no run twice. Migrations run before the
-- collector takes writes. The copy keeps each row's ingest_seq, so a copy
-- repeated after a crash midway collapses like any retried insert; a crash
-- between the swap and the drop would, when rerun, swap back: every row
-- kept, only these settings not gained.
--
-- `merge_selector_base` 10 (default 5) lets parts gather into larger merges,
-- so a span is rewritten fewer times: merge CPU fell from 6.5-9 to ~5 µs per
-- span on that benchmark, at the price of more parts between merges (reads
-- use FINAL, which stays correct with any number of parts).
CREATE TABLE IF NOT EXISTS {database}.spans_0005 AS {database}.spans
ENGINE = ReplacingMergeTree(ingest_seq)
PARTITION BY toYYYYMM(start_time)
ORDER BY (project, run_id, seq, span_id)
SETTINGS index_granularity_bytes = 1048576, fsync_after_insert = 1, fsync_part_directory = 1,
         min_bytes_for_wide_part = 268435456, merge_selector_base = 10;

INSERT INTO {database}.spans_0005 SELECT * FROM {database}.spans;

EXCHANGE TABLES {database}.spans AND {database}.spans_0005;

DROP TABLE {database}.spans_0005 SYNC;
