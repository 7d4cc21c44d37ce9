-- Imports carry the directory fields of 0025 (CSV columns of the same names; `corporate_number`
-- is the organisation's). Each is NULL when the file has no such column: the commit then keeps the
-- value already stored, as it does for hours. `last_verified_at` is staged as the cell's text
-- ('' clears the date, NULL keeps it). The staff-only fields are not CSV columns.
ALTER TABLE registry.import_rows
    ADD COLUMN phones jsonb,
    ADD COLUMN languages text[],
    ADD COLUMN accessibility text,
    ADD COLUMN eligibility text,
    ADD COLUMN fees text,
    ADD COLUMN office_number text,
    ADD COLUMN last_verified_at text,
    ADD COLUMN last_verified_by text,
    ADD COLUMN status text,
    ADD COLUMN corporate_number text;
