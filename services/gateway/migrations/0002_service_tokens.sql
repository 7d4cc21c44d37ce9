-- Service credentials: tokens that let a process register as one service and push its events.
-- A row with `service` set is a service credential; it never authenticates a client request.
ALTER TABLE gateway.tokens ADD COLUMN service text CHECK (service IS NULL OR service ~ '^[a-z][a-z0-9_.-]{0,63}$');
CREATE INDEX tokens_service ON gateway.tokens (service) WHERE service IS NOT NULL;
