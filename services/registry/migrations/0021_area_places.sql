-- The places a daily-life area (日常生活圏域) covers, so a resident finds their area by the name of
-- where they live (area.find): 町名・丁目 (`town`) or school districts (`school_district`).
-- Imported per municipality (area.places.import), by the owner of its daily-life areas. The
-- municipality is the area's (area_groups.municipality_code), never copied here; a place goes
-- with its area when the area is removed (and area.import deletes the places of an area it moves
-- to another municipality).
CREATE TABLE registry.area_places (
    daily_life_area_id  text NOT NULL REFERENCES registry.area_groups (id) ON DELETE CASCADE,
    kind                text NOT NULL CHECK (kind IN ('town', 'school_district')),
    name                text NOT NULL CHECK (name <> ''),
    kana                text NOT NULL DEFAULT '',
    -- Folded as areas' are (SearchText.normalise: NFKC, hiragana as katakana) for prefix search.
    name_search         text NOT NULL,
    kana_search         text NOT NULL,
    PRIMARY KEY (daily_life_area_id, kind, name)
);

CREATE INDEX area_places_name_search ON registry.area_places (name_search text_pattern_ops);
CREATE INDEX area_places_kana_search ON registry.area_places (kana_search text_pattern_ops);
