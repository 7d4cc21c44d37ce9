-- Event writers no longer lock each other out (EventOutbox.swift). They insert without a sequence;
-- insert_order (the old bigserial, renamed) only orders rows by insertion. The publisher, holding
-- the cursor row, numbers committed rows that have none in insert_order and only then pushes them;
-- events.read shows numbered rows only. Sequence order is thus the order in which the publisher
-- saw commits: a reader that has seen sequence N never later finds a smaller one, and a writer
-- holding its transaction open for long (a large import) holds up no other writer.
ALTER TABLE registry.outbox RENAME COLUMN sequence TO insert_order;
ALTER SEQUENCE registry.outbox_sequence_seq RENAME TO outbox_insert_order_seq;
ALTER TABLE registry.outbox ADD COLUMN sequence bigint;
UPDATE registry.outbox SET sequence = insert_order;
CREATE UNIQUE INDEX outbox_sequence ON registry.outbox (sequence);
CREATE INDEX outbox_unnumbered ON registry.outbox (insert_order) WHERE sequence IS NULL;
-- The index followed the renamed column; events.read filters by type in sequence order.
DROP INDEX registry.outbox_type;
CREATE INDEX outbox_type ON registry.outbox (type, sequence);

-- The last sequence number given out (the cursor's `sequence` stays the last one pushed).
ALTER TABLE registry.outbox_cursor ADD COLUMN assigned bigint;
UPDATE registry.outbox_cursor SET assigned = (SELECT coalesce(max(sequence), 0) FROM registry.outbox);
ALTER TABLE registry.outbox_cursor ALTER COLUMN assigned SET NOT NULL;
