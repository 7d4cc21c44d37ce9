-- Area definitions carry the period they are valid for and keep their history (issue 9): 二次医療圏
-- went from 335 to 330 between medical plans, and a past year's indicators belong to that year's
-- areas. `valid` is the period a defined area exists, and the period a municipality is a member
-- of an area ('[2023-04-01,2024-04-01)': from the first day, until the day before the second).
-- An import starts a definition on its `valid_from` and ends what it no longer has there, instead
-- of deleting it (AreaGroups.store). The definitions before 0033 have no known start: '(,)'.
ALTER TABLE registry.area_groups ADD COLUMN valid daterange NOT NULL DEFAULT '(,)' CHECK (NOT isempty(valid));
ALTER TABLE registry.area_group_members ADD COLUMN valid daterange NOT NULL DEFAULT '(,)' CHECK (NOT isempty(valid));

-- A municipality is a member of an area several times over its history, and of one area of each
-- kind at any date: the imports keep that (they end one membership where the next begins); the
-- indexes keep one open-ended membership per area and per kind.
ALTER TABLE registry.area_group_members DROP CONSTRAINT area_group_members_pkey;
ALTER TABLE registry.area_group_members DROP CONSTRAINT area_group_members_kind_municipality_code_key;
CREATE UNIQUE INDEX area_group_members_open ON registry.area_group_members (group_id, municipality_code) WHERE upper_inf(valid);
CREATE UNIQUE INDEX area_group_members_open_kind ON registry.area_group_members (kind, municipality_code) WHERE upper_inf(valid);
CREATE INDEX area_group_members_municipality ON registry.area_group_members (municipality_code);
CREATE INDEX area_group_members_group ON registry.area_group_members (group_id);

-- "Today" for the registry is Japan's date (UTC+9 all year), not the server's: a question asked at
-- 08:00 in Japan on 1 April is asked on 1 April.
CREATE FUNCTION registry.japan_today() RETURNS date LANGUAGE sql STABLE
    AS $$ SELECT (now() AT TIME ZONE 'Asia/Tokyo')::date $$;

-- An area's name (and kana) over its history: a redrawn 県南東部 renamed 県南部 keeps its code, and
-- a past day's question reads the name of that day. `area_groups.name` is the latest.
CREATE TABLE registry.area_group_names (
    group_id  text NOT NULL REFERENCES registry.area_groups (id) ON DELETE CASCADE,
    valid     daterange NOT NULL CHECK (NOT isempty(valid)),
    name      text NOT NULL CHECK (name <> ''),
    kana      text NOT NULL DEFAULT ''
);
CREATE INDEX area_group_names_group ON registry.area_group_names (group_id);
CREATE UNIQUE INDEX area_group_names_open ON registry.area_group_names (group_id) WHERE upper_inf(valid);
INSERT INTO registry.area_group_names (group_id, valid, name, kana) SELECT id, valid, name, kana FROM registry.area_groups;
