-- What the door read from a delivery (its updates, in statsync's own serialized form),
-- stored beside the body it was read from, so the engine applies it without reading the
-- body again: no second parse of a 12–30 KB GitHub body, and the claim does not fetch
-- and decompress it. NULL for rows stored without it (backfill, read-backs, rows from
-- before this migration); a value whose format version the running statsync does not
-- know is ignored and the body parsed instead. It is cleared when the delivery is applied,
-- ignored or failed (a requeued delivery is read from its body again).
ALTER TABLE inbound_events ADD COLUMN parsed bytea;
ALTER TABLE inbound_events ALTER COLUMN parsed SET STATISTICS 0;
