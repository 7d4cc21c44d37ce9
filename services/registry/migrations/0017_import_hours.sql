-- Imports carry opening hours (the CSV column `hours`). NULL when the file has no such column:
-- the commit then keeps the hours already stored rather than clearing them.
ALTER TABLE registry.import_rows ADD COLUMN hours jsonb;
