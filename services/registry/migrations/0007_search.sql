-- Free-text search over resources: trigram index for LIKE '%text%' on the folded search_text.
-- pg_trgm ships with PostgreSQL (contrib); creating it needs a role allowed to create extensions.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX resources_search_text ON registry.resources USING gin (search_text gin_trgm_ops) WHERE retired_at IS NULL;
-- Keyset paging of search results: (municipality_code, id).
CREATE INDEX resources_municipality_id ON registry.resources (municipality_code, id) WHERE retired_at IS NULL;
-- The area a resource is responsible for: what it serves if wider, else its daily-life area, else its municipality.
CREATE INDEX resources_service_area ON registry.resources
    ((coalesce(serves_area, daily_life_area_id, municipality_code::text)), category_code) WHERE retired_at IS NULL;
