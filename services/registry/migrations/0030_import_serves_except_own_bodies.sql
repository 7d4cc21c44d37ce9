-- Imports carry serves_except_own_bodies (the CSV column of that name). NULL when the file has no
-- such column: the commit then keeps the value already stored, as it does for hours.
ALTER TABLE registry.import_rows ADD COLUMN serves_except_own_bodies boolean;
