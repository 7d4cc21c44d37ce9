-- Imports look organisations up by name and staged rows up by external id, row by row:
-- without these, a 300,000-row import is quadratic.
CREATE INDEX organizations_tenant_name ON registry.organizations (tenant, name) WHERE retired_at IS NULL;
CREATE INDEX import_rows_external_id ON registry.import_rows (import_id, external_id);
