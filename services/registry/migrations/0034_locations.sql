-- Several locations per service (issue 9): the other places a resource is given at, beside its own
-- address (HSDS service_at_location + location + address). A list of objects, each stored in full
-- by canonical_locations (Locations.swift has the schema writes are checked against): name,
-- municipality_code (null: the resource's), postal_code, address, latitude, longitude,
-- accessibility, hours. Public, like the address; the staff-only staff_address is never one.
CREATE FUNCTION registry.canonical_locations(l jsonb) RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'name', coalesce(e->>'name', ''), 'municipality_code', e->'municipality_code',
               'postal_code', coalesce(e->>'postal_code', ''), 'address', coalesce(e->>'address', ''),
               'latitude', e->'latitude', 'longitude', e->'longitude',
               'accessibility', coalesce(e->>'accessibility', ''), 'hours', coalesce(e->'hours', '[]'::jsonb))
           ORDER BY x.n), '[]'::jsonb)
    FROM jsonb_array_elements(coalesce(l, '[]'::jsonb)) WITH ORDINALITY AS x(e, n)
$$;
ALTER TABLE registry.resources ADD COLUMN locations jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(locations) = 'array');
-- Imports stage the CSV column `locations` (the list as JSON); NULL when the file has no such
-- column: the commit then keeps the stored list, as it does for hours.
ALTER TABLE registry.import_rows ADD COLUMN locations jsonb;
