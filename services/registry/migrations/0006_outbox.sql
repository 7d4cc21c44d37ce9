-- Events written in the same transaction as the change they describe (transactional outbox),
-- CloudEvents 1.0 attributes plus a sequence number. Writers take an advisory lock per
-- transaction (see Outbox.swift) so sequence order is commit order: a reader that has seen
-- sequence N never later finds a smaller one. Events never carry personal data of individual cases.
CREATE TABLE registry.outbox (
    sequence      bigserial PRIMARY KEY,
    id            uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    type          text NOT NULL,
    subject       text NOT NULL,
    tenant        text NOT NULL,
    time          timestamptz NOT NULL DEFAULT now(),
    data          jsonb NOT NULL
);

CREATE INDEX outbox_type ON registry.outbox (type, sequence);
