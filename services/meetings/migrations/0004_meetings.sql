-- Meetings of a body (and its trainings, 研修), their attendance by sector, agendas in two parts
-- classified on the 3 axes × 2 viewpoints, minutes, decisions and action items.
CREATE TABLE meetings.meetings (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    body_id         uuid NOT NULL REFERENCES meetings.bodies (id),
    tenant          text NOT NULL,      -- the body's tenant, copied: every read filters on it
    kind            text NOT NULL DEFAULT 'meeting' CHECK (kind IN ('meeting', 'training')),
    title           text NOT NULL,
    starts_at       timestamptz NOT NULL,
    venue           text NOT NULL DEFAULT '',
    format          text NOT NULL CHECK (format IN ('in_person', 'online', 'hybrid', 'written')),
    -- closed (非公開: individuals may be named) or open to observers (傍聴)
    visibility      text NOT NULL CHECK (visibility IN ('closed', 'open')),
    status          text NOT NULL DEFAULT 'scheduled' CHECK (status IN ('scheduled', 'held', 'cancelled')),
    cancel_reason   text,
    observers       integer NOT NULL DEFAULT 0 CHECK (observers >= 0),
    goals_set       boolean NOT NULL DEFAULT false,  -- the meeting set the year's goals (§6 PDCA)
    goals_evaluated boolean NOT NULL DEFAULT false,  -- the meeting evaluated progress against them
    minutes         text,
    version         integer NOT NULL DEFAULT 1,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX meetings_body_starts ON meetings.meetings (body_id, starts_at);

CREATE TABLE meetings.attendance (
    meeting_id  uuid NOT NULL REFERENCES meetings.meetings (id),
    sector      text NOT NULL CHECK (sector IN ('health', 'medical', 'welfare', 'long_term_care', 'user', 'family',
                                                'peer_supporter', 'housing', 'administration', 'other')),
    count       integer NOT NULL CHECK (count >= 0),
    PRIMARY KEY (meeting_id, sector)
);

CREATE TABLE meetings.agenda_items (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    meeting_id  uuid NOT NULL REFERENCES meetings.meetings (id),
    part        text NOT NULL CHECK (part IN ('report', 'deliberation')),  -- 報告事項 / 検討事項
    position    integer NOT NULL,
    title       text NOT NULL,
    notes       text NOT NULL DEFAULT '',
    -- 個別支援の検討 / 支援体制の整備 / 地域基盤の整備
    axis        text NOT NULL CHECK (axis IN ('individual_support', 'support_system', 'regional_infrastructure')),
    -- 保健・医療 / 障害福祉
    viewpoint   text NOT NULL CHECK (viewpoint IN ('health_medical', 'disability_welfare')),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agenda_items_meeting ON meetings.agenda_items (meeting_id, part, position);

CREATE TABLE meetings.decisions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    meeting_id      uuid NOT NULL REFERENCES meetings.meetings (id),
    agenda_item_id  uuid REFERENCES meetings.agenda_items (id),
    text            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX decisions_meeting ON meetings.decisions (meeting_id);

CREATE TABLE meetings.action_items (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    meeting_id              uuid NOT NULL REFERENCES meetings.meetings (id),  -- where it was agreed
    body_id                 uuid NOT NULL REFERENCES meetings.bodies (id),
    decision_id             uuid REFERENCES meetings.decisions (id),
    title                   text NOT NULL,
    owner_organization_id   text,       -- the registry organisation that owns it
    due_date                date,
    status                  text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'done')),
    done_at                 timestamptz,
    due_noticed_at          timestamptz,  -- when action_item.due was appended (once per item)
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX action_items_body_open ON meetings.action_items (body_id) WHERE status <> 'done';
