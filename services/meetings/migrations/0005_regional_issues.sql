-- Regional issues (地域課題): raised by a body from an agenda item, a case (its id only: no content
-- is copied) or data; discussed, handled locally or escalated up the bodies (municipal → area →
-- prefectural), answered back to the raising body, closed; duplicates merged.
CREATE TABLE meetings.regional_issues (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    body_id                 uuid NOT NULL REFERENCES meetings.bodies (id),  -- the raising body
    tenant                  text NOT NULL,                                  -- the raising body's tenant
    current_body_id         uuid NOT NULL REFERENCES meetings.bodies (id),  -- the body that holds it now
    title                   text NOT NULL,
    theme                   text NOT NULL,
    axis                    text NOT NULL CHECK (axis IN ('individual_support', 'support_system', 'regional_infrastructure')),
    area_municipalities     text[] NOT NULL DEFAULT '{}',
    area_label              text NOT NULL DEFAULT '',
    evidence                text NOT NULL DEFAULT '',
    source_kind             text NOT NULL CHECK (source_kind IN ('agenda_item', 'case', 'data')),
    source_agenda_item_id   uuid REFERENCES meetings.agenda_items (id),
    source_case_id          uuid,       -- a case's id only, never its content
    source_data             text NOT NULL DEFAULT '',  -- which data (source, year) showed it
    status                  text NOT NULL DEFAULT 'raised'
                            CHECK (status IN ('raised', 'discussed', 'handled_locally', 'escalated', 'answered', 'closed')),
    answer                  text,
    answered_by_body_id     uuid REFERENCES meetings.bodies (id),
    answered_at             timestamptz,
    merged_into             uuid REFERENCES meetings.regional_issues (id),
    version                 integer NOT NULL DEFAULT 1,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    CHECK ((source_kind = 'agenda_item') = (source_agenda_item_id IS NOT NULL)),
    CHECK ((source_kind = 'case') = (source_case_id IS NOT NULL))
);
CREATE INDEX regional_issues_body ON meetings.regional_issues (body_id, created_at);
CREATE INDEX regional_issues_current ON meetings.regional_issues (current_body_id) WHERE status = 'escalated';

-- Each step of an issue, with its reason and the token that took it.
CREATE TABLE meetings.regional_issue_steps (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    issue_id    uuid NOT NULL REFERENCES meetings.regional_issues (id),
    from_status text,
    to_status   text NOT NULL,
    body_id     uuid NOT NULL REFERENCES meetings.bodies (id),  -- the body that took the step
    to_body_id  uuid REFERENCES meetings.bodies (id),           -- an escalation's receiving body
    reason      text NOT NULL DEFAULT '',
    by_token    text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX regional_issue_steps_issue ON meetings.regional_issue_steps (issue_id, id);
CREATE INDEX regional_issue_steps_received ON meetings.regional_issue_steps (to_body_id) WHERE to_body_id IS NOT NULL;
