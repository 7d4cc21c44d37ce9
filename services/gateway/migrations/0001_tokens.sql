-- Bearer tokens. Only a SHA-256 hash of each token is stored; the token itself is shown once, at creation.
CREATE TABLE gateway.tokens (
    id          text PRIMARY KEY,
    token_hash  bytea NOT NULL UNIQUE,
    tenant      text NOT NULL CHECK (tenant <> ''),
    roles       text[] NOT NULL DEFAULT '{}',
    label       text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

CREATE INDEX tokens_tenant ON gateway.tokens (tenant);
