-- 保健所管轄区域 (health_centre_area): the municipalities one 保健所 (public health centre) serves.
-- Like the disability and medical areas it is a set of whole municipalities, defined by the
-- prefecture, one per municipality; it is its own kind because a 保健所's jurisdiction need not
-- equal a 障害保健福祉圏域 (a prefecture may run two 保健所 in one area, or one across two).
ALTER TABLE registry.area_groups DROP CONSTRAINT area_groups_kind_check;
ALTER TABLE registry.area_groups ADD CONSTRAINT area_groups_kind_check
    CHECK (kind IN ('disability_area', 'medical_area', 'health_centre_area', 'daily_life_area'));
ALTER TABLE registry.area_group_members DROP CONSTRAINT area_group_members_kind_check;
ALTER TABLE registry.area_group_members ADD CONSTRAINT area_group_members_kind_check
    CHECK (kind IN ('disability_area', 'medical_area', 'health_centre_area'));
