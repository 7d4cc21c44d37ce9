-- The last event sequence pushed to the gateway (EventOutbox.publish). Events before this
-- migration are not pushed; they stay readable with events.read.
CREATE TABLE registry.outbox_cursor (
    id        int PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    sequence  bigint NOT NULL
);

INSERT INTO registry.outbox_cursor (id, sequence) SELECT 1, coalesce(max(sequence), 0) FROM registry.outbox;
