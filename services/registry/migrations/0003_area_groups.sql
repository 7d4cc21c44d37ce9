-- Areas each prefecture defines itself (imported from CSV by area.import):
--   disability_area  障害保健福祉圏域  a set of municipalities (one per municipality)
--   medical_area     二次医療圏        a set of municipalities (one per municipality)
--   daily_life_area  日常生活圏域      a part of one municipality (many per municipality)
CREATE TABLE registry.area_groups (
    id                 text PRIMARY KEY,          -- '<prefecture code>:<kind>:<local code>'
    kind               text NOT NULL CHECK (kind IN ('disability_area', 'medical_area', 'daily_life_area')),
    prefecture_code    char(6) NOT NULL REFERENCES registry.areas (code),
    local_code         text NOT NULL CHECK (local_code ~ '^[0-9A-Za-z_-]{1,32}$'),
    name               text NOT NULL CHECK (name <> ''),
    kana               text NOT NULL DEFAULT '',
    name_search        text NOT NULL,
    kana_search        text NOT NULL,
    -- The municipality a daily-life area lies in; NULL for the other kinds.
    municipality_code  char(6) REFERENCES registry.areas (code),
    UNIQUE (prefecture_code, kind, local_code),
    CHECK ((kind = 'daily_life_area') = (municipality_code IS NOT NULL))
);

CREATE INDEX area_groups_municipality ON registry.area_groups (municipality_code) WHERE municipality_code IS NOT NULL;

-- Members of disability and medical areas. A municipality belongs to at most one area of each kind.
CREATE TABLE registry.area_group_members (
    group_id           text NOT NULL REFERENCES registry.area_groups (id) ON DELETE CASCADE,
    kind               text NOT NULL CHECK (kind IN ('disability_area', 'medical_area')),
    municipality_code  char(6) NOT NULL REFERENCES registry.areas (code),
    PRIMARY KEY (group_id, municipality_code),
    UNIQUE (kind, municipality_code)
);
