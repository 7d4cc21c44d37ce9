-- area.import detaches the resources that refer to an area it removes (daily_life_area_id,
-- serves_area): each becomes a new version, recorded with the change 'area_removed'
-- (AreaGroups.swift). The indexes find those resources, retired ones included.
ALTER TABLE registry.resource_history DROP CONSTRAINT resource_history_change_check;
ALTER TABLE registry.resource_history ADD CONSTRAINT resource_history_change_check
    CHECK (change IN ('created', 'updated', 'retired', 'vacancies', 'area_removed'));
CREATE INDEX resources_daily_life_area ON registry.resources (daily_life_area_id) WHERE daily_life_area_id IS NOT NULL;
CREATE INDEX resources_serves_area_all ON registry.resources (serves_area) WHERE serves_area IS NOT NULL;
