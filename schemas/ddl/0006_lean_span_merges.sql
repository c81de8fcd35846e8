-- Merges of `spans` read 1,024 rows (at most 1 MB) of each part at a time.
--
-- A merge holds one block of every part it merges; with the default 8,192
-- rows per block and spans of ~2 KB, a merge of 11 parts (merge_selector_base
-- is 10, schemas/ddl/0005) was seen holding ~190 MB in the collector. Measured
-- on the benchmark's spans (OPTIMIZE of 6 parts of 32 MB of requests, and of 10
-- of 20 MB), smaller blocks held 31 instead of 50 MB and 45 instead of 66 MB,
-- in about the same time. Even so a merge holds ~6 MB per part it reads (36 MB
-- for 5 parts of 16 MB of requests, 61 MB for 10), so a merge takes at most
-- 10 parts (merge_selector_base is 10: the usual merge is no larger), also when
-- parts piled up while the single merge thread was busy. Only merge settings
-- change: no part is rewritten.
ALTER TABLE {database}.spans MODIFY SETTING merge_max_block_size = 1024, merge_max_block_size_bytes = 1048576,
    max_parts_to_merge_at_once = 10;
