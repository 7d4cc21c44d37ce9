-- The registry's events move to the runtime's stream tables (registry.events and
-- registry.event_cursor, made by the runtime's migration 0002_events before this one runs;
-- docs/events.md): every row keeps its id, its sequence (NULL for a committed row the old publisher
-- had not numbered yet: the new one numbers it after the others) and its insertion order; the
-- cursor keeps the last number given out and the last one pushed. Then the old tables go.
INSERT INTO registry.events (insert_order, sequence, id, type, subject, tenant, time, data)
SELECT insert_order, sequence, id, type, subject, tenant, time, data FROM registry.outbox ORDER BY insert_order;

SELECT setval(pg_get_serial_sequence('registry.events', 'insert_order'),
              greatest((SELECT max(insert_order) FROM registry.events), 1),
              (SELECT count(*) > 0 FROM registry.events));

UPDATE registry.event_cursor e SET assigned = c.assigned, pushed = c.sequence
FROM registry.outbox_cursor c WHERE e.id = 1 AND c.id = 1;

DROP TABLE registry.outbox_cursor;
DROP TABLE registry.outbox;
