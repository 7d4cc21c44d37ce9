-- Organisations and the services they run at locations (HSDS: organization, service_at_location;
-- FHIR: Organization, HealthcareService + Location). Every row is owned by a tenant (the
-- implementing body's local-government code, or 'national'), carries a version for optimistic
-- concurrency, and is retired, never deleted; each change is kept in the history tables.

CREATE TABLE registry.organizations (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant       text NOT NULL,
    name         text NOT NULL CHECK (name <> ''),
    kana         text NOT NULL DEFAULT '',
    description  text NOT NULL DEFAULT '',
    url          text NOT NULL DEFAULT '',
    email        text NOT NULL DEFAULT '',
    phone        text NOT NULL DEFAULT '',
    version      int NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    retired_at   timestamptz
);

CREATE INDEX organizations_tenant ON registry.organizations (tenant);

CREATE TABLE registry.resources (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant               text NOT NULL,
    organization_id      uuid NOT NULL REFERENCES registry.organizations (id),
    -- A key of the tenant's own (e.g. its register number); makes CSV imports idempotent.
    external_id          text,
    name                 text NOT NULL CHECK (name <> ''),
    kana                 text NOT NULL DEFAULT '',
    category_code        text NOT NULL REFERENCES registry.categories (code),
    kinds                text[] NOT NULL DEFAULT '{}',
    -- Where it is: a municipality; optionally a daily-life area of it.
    municipality_code    char(6) NOT NULL REFERENCES registry.areas (code),
    daily_life_area_id   text REFERENCES registry.area_groups (id) ON DELETE SET NULL,
    -- The area it is responsible for when wider than its municipality (a 保健所 for its
    -- disability area, a prefectural centre for the prefecture): an areas.code or area_groups.id.
    serves_area          text,
    postal_code          text NOT NULL DEFAULT '',
    address              text NOT NULL DEFAULT '',
    latitude             double precision CHECK (latitude BETWEEN -90 AND 90),
    longitude            double precision CHECK (longitude BETWEEN -180 AND 180),
    phone                text NOT NULL DEFAULT '',
    email                text NOT NULL DEFAULT '',
    url                  text NOT NULL DEFAULT '',
    description          text NOT NULL DEFAULT '',
    -- Opening hours as HSDS schedule-like rows: [{"days":["mo","tu"],"opens":"09:00","closes":"17:00"}]
    hours                jsonb NOT NULL DEFAULT '[]',
    -- How people use it: visit (通所・通院), stay (入所・入院), home_visit (訪問).
    access_modes         text[] NOT NULL DEFAULT '{}',
    capacity             int CHECK (capacity >= 0),
    vacancies            int CHECK (vacancies >= 0),
    consultation_types   text[] NOT NULL DEFAULT '{}',
    -- Folded name + kana + address + description for free-text search (SearchText.normalise).
    search_text          text NOT NULL DEFAULT '',
    version              int NOT NULL DEFAULT 1,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    retired_at           timestamptz,
    CHECK (vacancies IS NULL OR capacity IS NULL OR vacancies <= capacity),
    UNIQUE (tenant, external_id)
);

CREATE INDEX resources_municipality_category ON registry.resources (municipality_code, category_code, id) WHERE retired_at IS NULL;
CREATE INDEX resources_category ON registry.resources (category_code, id) WHERE retired_at IS NULL;
CREATE INDEX resources_kinds ON registry.resources USING gin (kinds) WHERE retired_at IS NULL;
CREATE INDEX resources_consultation ON registry.resources USING gin (consultation_types) WHERE retired_at IS NULL;
CREATE INDEX resources_serves_area ON registry.resources (serves_area) WHERE serves_area IS NOT NULL AND retired_at IS NULL;
CREATE INDEX resources_tenant ON registry.resources (tenant);
CREATE INDEX resources_organization ON registry.resources (organization_id);

-- Every version of every resource and organisation, as it was written.
CREATE TABLE registry.resource_history (
    resource_id  uuid NOT NULL REFERENCES registry.resources (id),
    version      int NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT now(),
    changed_by   text,               -- token id, never a person's name
    change       text NOT NULL CHECK (change IN ('created', 'updated', 'retired', 'vacancies')),
    snapshot     jsonb NOT NULL,
    PRIMARY KEY (resource_id, version)
);

CREATE TABLE registry.organization_history (
    organization_id  uuid NOT NULL REFERENCES registry.organizations (id),
    version          int NOT NULL,
    changed_at       timestamptz NOT NULL DEFAULT now(),
    changed_by       text,
    change           text NOT NULL CHECK (change IN ('created', 'updated', 'retired')),
    snapshot         jsonb NOT NULL,
    PRIMARY KEY (organization_id, version)
);

-- Who backs up whom (バックアップ): e.g. 精神保健福祉センター backs up 保健所 backs up a municipal window.
CREATE TABLE registry.backups (
    backer_id   uuid NOT NULL REFERENCES registry.resources (id),
    backed_id   uuid NOT NULL REFERENCES registry.resources (id),
    tenant      text NOT NULL,
    note        text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (backer_id, backed_id),
    CHECK (backer_id <> backed_id)
);

CREATE INDEX backups_backed ON registry.backups (backed_id);

-- Which implementing body runs which of the 11 items of the promotion project (構築推進事業) in a fiscal year.
CREATE TABLE registry.program_items (
    item     int PRIMARY KEY CHECK (item BETWEEN 1 AND 11),
    name_ja  text NOT NULL,
    name_en  text NOT NULL,
    required boolean NOT NULL DEFAULT false
);

INSERT INTO registry.program_items (item, name_ja, name_en, required) VALUES
(1, '保健・医療・福祉関係者による協議の場の設置', 'Set up the consultation meeting of health, medical and welfare people', true),
(2, '普及啓発', 'Public awareness', false),
(3, '家族支援', 'Family support', false),
(4, '住まいの確保支援', 'Securing housing', false),
(5, 'ピアサポートの活用', 'Peer support', false),
(6, 'アウトリーチ支援', 'Outreach', false),
(7, '措置入院者及び緊急措置入院者の退院後の医療等の継続支援', 'Continuing care after involuntary admission', false),
(8, '地域移行関係職員に対する研修', 'Training staff for community transition', false),
(9, '入院中の精神障害者の地域移行', 'Moving in-patients to community life', false),
(10, '包括ケアシステムの構築状況の評価', 'Evaluating how far the system is built', false),
(11, 'その他', 'Other items that help build the system', false);

CREATE TABLE registry.program_participation (
    body_code    char(6) NOT NULL REFERENCES registry.areas (code),
    fiscal_year  int NOT NULL CHECK (fiscal_year BETWEEN 2018 AND 2100),
    item         int NOT NULL REFERENCES registry.program_items (item),
    budget_thousand_yen bigint CHECK (budget_thousand_yen >= 0),
    note         text NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (body_code, fiscal_year, item)
);
