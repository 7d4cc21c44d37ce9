-- Individual cases (要配慮個人情報): what PostgreSQL holds of them is ciphertext only. The service
-- seals each case's content with a data key of its own (AES-256-GCM) and stores that key wrapped
-- by the case master key of its configuration (TSUNAGU_MEETINGS_CASE_KEY), which never reaches
-- the database; both seals authenticate the case id. In clear: the owning body, the case type and
-- the basis of processing (for access, statistics and oversight), status and times.
CREATE TABLE meetings.cases (
    id          uuid PRIMARY KEY,
    body_id     uuid NOT NULL REFERENCES meetings.bodies (id),
    -- long_stay_transition (長期入院からの地域移行), post_involuntary_admission (措置入院後の退院後支援計画),
    -- outreach (アウトリーチ), difficult (支援困難事例), other
    case_type   text CHECK (case_type IN ('long_stay_transition', 'post_involuntary_admission', 'outreach', 'difficult', 'other')),
    -- consent (本人同意), guardian_consent (法定代理人の同意), statutory (法令に基づく: e.g. 精神保健福祉法の退院後支援),
    -- vital_interest (生命・身体の保護で同意困難), public_health (公衆衛生の向上で同意困難)
    basis       text CHECK (basis IN ('consent', 'guardian_consent', 'statutory', 'vital_interest', 'public_health')),
    status      text NOT NULL CHECK (status IN ('open', 'closed', 'erased')),
    key_id      text,                   -- fingerprint of the master key that wrapped data_key
    data_key    bytea,                  -- the case's data key, wrapped (nonce | ciphertext | tag)
    content     bytea,                  -- the content, sealed with the data key (nonce | ciphertext | tag)
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- The tombstone of an erasure: when, by whom, why (a reason code, never free text). No content.
    erased_at        timestamptz,
    erased_by_token  text,
    erased_by_tenant text,
    erasure_reason   text CHECK (erasure_reason IN ('data_subject_request', 'consent_withdrawn', 'retention_expired', 'recorded_in_error')),
    CHECK ((status = 'erased') = (erased_at IS NOT NULL)),
    CHECK (status = 'erased' OR (case_type IS NOT NULL AND basis IS NOT NULL AND key_id IS NOT NULL
                                 AND data_key IS NOT NULL AND content IS NOT NULL)),
    CHECK (status <> 'erased' OR (case_type IS NULL AND basis IS NULL AND key_id IS NULL AND data_key IS NULL
                                  AND content IS NULL AND erasure_reason IS NOT NULL))
);
CREATE INDEX cases_body ON meetings.cases (body_id);

-- Every read and write of a case, and every refused attempt: who (token id and tenant), when,
-- which case (or body, for a listing), what action on which fields, and the outcome. Never content.
CREATE TABLE meetings.case_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    token_id    text,
    tenant      text NOT NULL,
    case_id     uuid,                   -- no foreign key: a refused attempt may name a case that does not exist
    body_id     uuid,
    action      text NOT NULL CHECK (action IN ('create', 'read', 'update', 'erase', 'list', 'audit_read')),
    fields      text[] NOT NULL DEFAULT '{}',
    outcome     text NOT NULL CHECK (outcome IN ('allowed', 'forbidden', 'not_found', 'unreadable')),
    request_id  text NOT NULL
);
CREATE INDEX case_audit_case ON meetings.case_audit (case_id, at);
CREATE INDEX case_audit_body ON meetings.case_audit (body_id, at);
