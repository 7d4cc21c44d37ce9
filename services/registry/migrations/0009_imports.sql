-- CSV imports of resources, staged in chunks and applied all at once (resource.import.*).
CREATE TABLE registry.imports (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant        text NOT NULL,
    created_by    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    committed_at  timestamptz,
    result        jsonb
);

-- Staged rows: unlogged, as they are scratch data (a crash loses an import in progress, not data).
CREATE UNLOGGED TABLE registry.import_rows (
    import_id           uuid NOT NULL REFERENCES registry.imports (id) ON DELETE CASCADE,
    line                int NOT NULL,
    external_id         text NOT NULL,
    organization        text NOT NULL,
    name                text NOT NULL,
    kana                text NOT NULL,
    category_code       text NOT NULL,
    kinds               text[] NOT NULL,
    municipality_code   text NOT NULL,
    daily_life_area_id  text,
    serves_area         text,
    postal_code         text NOT NULL,
    address             text NOT NULL,
    latitude            double precision,
    longitude           double precision,
    phone               text NOT NULL,
    email               text NOT NULL,
    url                 text NOT NULL,
    description         text NOT NULL,
    access_modes        text[] NOT NULL,
    capacity            int,
    vacancies           int,
    consultation_types  text[] NOT NULL,
    search_text         text NOT NULL,
    PRIMARY KEY (import_id, line)
);

CREATE UNLOGGED TABLE registry.import_errors (
    import_id  uuid NOT NULL REFERENCES registry.imports (id) ON DELETE CASCADE,
    line       int NOT NULL,
    message    text NOT NULL
);

CREATE INDEX import_errors_import ON registry.import_errors (import_id, line);
