-- Staged import rows are logged like every other table: an unlogged table is emptied by crash
-- recovery and never reaches a standby, so an import could vanish between its chunks and its commit.
ALTER TABLE registry.import_rows SET LOGGED;
ALTER TABLE registry.import_errors SET LOGGED;

-- Imports never committed expire a day after they began (ResourceImport.expiry): their staged rows
-- are deleted and the import is marked, so a late chunk or commit is told it expired.
ALTER TABLE registry.imports ADD COLUMN expired_at timestamptz;
CREATE INDEX imports_open ON registry.imports (created_at) WHERE committed_at IS NULL AND expired_at IS NULL;
