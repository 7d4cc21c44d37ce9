-- Meeting bodies (協議の場) and their members. The shape agreed with the cases part of the service
-- (/work/meetings-members.sql): bodies.id/tenant/name and every members column keep their names and
-- meanings; the rest is this service's.
CREATE TABLE meetings.bodies (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant      text NOT NULL,          -- owning implementing body's 6-digit code (the principal's tenant)
    name        text NOT NULL,
    -- municipality, disability_area (障害保健福祉圏域), prefecture, joint (several municipalities),
    -- ward (a designated city's ward, 行政区)
    level       text NOT NULL CHECK (level IN ('municipality', 'disability_area', 'prefecture', 'joint', 'ward')),
    prefecture_code text NOT NULL,      -- 6-digit prefecture code (130001)
    municipalities  text[] NOT NULL DEFAULT '{}',  -- 6-digit codes covered (a ward body: its city)
    ward_name   text,                   -- a ward body's ward (札幌市中央区 → 中央区)
    area_code   text,                   -- a disability_area body's area code as the prefecture defines it
    -- 事務局: health_centre (保健所), welfare_section (障害福祉主管課), core_consultation_centre (基幹相談支援センター)
    secretariat text NOT NULL CHECK (secretariat IN ('health_centre', 'welfare_section', 'core_consultation_centre')),
    secretariat_organization_id text,   -- the secretariat's registry organisation id, if given
    -- standalone, council_working_group (自立支援協議会の部会), area_council (圏域の協議会)
    basis       text NOT NULL CHECK (basis IN ('standalone', 'council_working_group', 'area_council')),
    escalates_to uuid REFERENCES meetings.bodies (id),  -- the body an issue goes to when escalated
    version     integer NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);
CREATE INDEX bodies_tenant ON meetings.bodies (tenant);
CREATE INDEX bodies_prefecture ON meetings.bodies (prefecture_code);
CREATE INDEX bodies_municipalities ON meetings.bodies USING gin (municipalities);

CREATE TABLE meetings.members (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    body_id         uuid NOT NULL REFERENCES meetings.bodies (id),
    organization_id text,               -- a registry organisation id, or NULL for a named person
    person_name     text,               -- a named person (NULL for an organisation)
    sector          text NOT NULL CHECK (sector IN ('health', 'medical', 'welfare', 'long_term_care', 'user', 'family',
                                                    'peer_supporter', 'housing', 'administration', 'other')),
    role            text NOT NULL CHECK (role IN ('chair', 'vice_chair', 'secretariat', 'member')),
    term_start      date NOT NULL,
    term_end        date,               -- NULL: open-ended
    account         text,               -- the gateway token id (principal.token_id) this member acts with, if any
    case_role       text CHECK (case_role IN ('reader', 'editor')),  -- NULL: no access to cases
    affiliation     text NOT NULL DEFAULT '',  -- a named person's organisation or title, as text
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((organization_id IS NULL) <> (person_name IS NULL)),
    CHECK (term_end IS NULL OR term_end >= term_start)
);
CREATE INDEX members_body ON meetings.members (body_id);
CREATE INDEX members_account ON meetings.members (account) WHERE account IS NOT NULL;
