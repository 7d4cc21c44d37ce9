-- A resource may serve several areas (issue 9): `serves_areas`, an ordered list of area codes,
-- defined areas' ids or `national`. The one `serves_area` it replaces stays readable as the first
-- of the list (a generated column, so it can never disagree); writers set the list.
-- Search and serve match a resident's levels against the areas served, or, when none is named,
-- the resource's daily-life area, else its municipality (as the one coalesce of 0007 did): two
-- indexes, one per case, that the planner ORs (Search.servesAny). The second keeps the category
-- beside the area, as 0007's did, so a category filter is answered by the index.
ALTER TABLE registry.resources ADD COLUMN serves_areas text[] NOT NULL DEFAULT '{}'
    CHECK (cardinality(serves_areas) <= 20 AND array_position(serves_areas, NULL) IS NULL);
UPDATE registry.resources SET serves_areas = ARRAY[serves_area] WHERE serves_area IS NOT NULL;
-- Drops the indexes on it too (resources_serves_area, resources_serves_area_all, resources_service_area).
ALTER TABLE registry.resources DROP COLUMN serves_area;
ALTER TABLE registry.resources ADD COLUMN serves_area text GENERATED ALWAYS AS (serves_areas[1]) STORED;
-- The areas named (all rows: area.import finds retired resources serving an area it ends too).
CREATE INDEX resources_serves_areas ON registry.resources USING gin (serves_areas);
-- The resources naming none, by their own area and category.
CREATE INDEX resources_own_area ON registry.resources ((coalesce(daily_life_area_id, municipality_code::text)), category_code)
    WHERE retired_at IS NULL AND cardinality(serves_areas) = 0;

-- Imports stage the list (CSV column `serves_areas`, or the older `serves_area`, `|`-separated).
-- NULL when the file has neither column: the commit then keeps the stored list, as for hours.
ALTER TABLE registry.import_rows ADD COLUMN serves_areas text[];
