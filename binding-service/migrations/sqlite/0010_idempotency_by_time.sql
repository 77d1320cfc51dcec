-- First answers past their retention window are dropped by time, in bounded batches: each
-- batch finds the oldest records still holding an answer through this index, never reading
-- the records dropped before (an expired record keeps its request ID, with an empty
-- fingerprint).
CREATE INDEX idempotency_live_by_time ON idempotency (create_time) WHERE fingerprint <> '';
