-- The area hierarchy (圏域): nation > prefecture (都道府県) > municipality (市区町村).
-- Codes are the national local-government codes (全国地方公共団体コード, JIS X 0402, 6 digits
-- with a check digit). Other groupings (障害保健福祉圏域, 二次医療圏, 日常生活圏域) come later.
CREATE TABLE registry.areas (
    code             char(6) PRIMARY KEY CHECK (code ~ '^[0-9]{6}$'),
    level            text NOT NULL CHECK (level IN ('prefecture', 'municipality')),
    prefecture_code  char(6) NOT NULL,
    parent_code      char(6),
    name             text NOT NULL,
    kana             text NOT NULL,
    -- NFKC-normalised name and kana (kana as full-width katakana) for prefix search.
    name_search      text NOT NULL,
    kana_search      text NOT NULL,
    CHECK ((level = 'prefecture') = (parent_code IS NULL))
);

CREATE INDEX areas_parent ON registry.areas (parent_code, code);
CREATE INDEX areas_name_search ON registry.areas (name_search text_pattern_ops);
CREATE INDEX areas_kana_search ON registry.areas (kana_search text_pattern_ops);
