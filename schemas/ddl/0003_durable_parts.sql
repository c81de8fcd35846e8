-- Parts are on disk before an INSERT returns.
--
-- The collector deletes a spool segment as soon as the INSERT that loaded it
-- returns, so the rows must then be as durable as the spool was: fsync'd,
-- not just in the page cache (which survives kill -9 but not a power cut).
-- One fsync per part costs little next to the collector's large INSERTs.
ALTER TABLE {database}.spans MODIFY SETTING fsync_after_insert = 1, fsync_part_directory = 1;
ALTER TABLE {database}.runs MODIFY SETTING fsync_after_insert = 1, fsync_part_directory = 1;
ALTER TABLE {database}.blobs MODIFY SETTING fsync_after_insert = 1, fsync_part_directory = 1;
ALTER TABLE {database}.blob_chunks MODIFY SETTING fsync_after_insert = 1, fsync_part_directory = 1;
