-- Participation by fiscal year: the promotion project's records start in FY2017, and its item list
-- changed over the years (item 2, 普及啓発, was added in FY2019), so each item says the fiscal
-- years it exists in and participation.set accepts only the items of the year it records.
ALTER TABLE registry.program_participation DROP CONSTRAINT program_participation_fiscal_year_check;
ALTER TABLE registry.program_participation ADD CONSTRAINT program_participation_fiscal_year_check
    CHECK (fiscal_year BETWEEN 2017 AND 2100);

ALTER TABLE registry.program_items ADD COLUMN since_fiscal_year int NOT NULL DEFAULT 2017;
ALTER TABLE registry.program_items ADD COLUMN until_fiscal_year int;
UPDATE registry.program_items SET since_fiscal_year = 2019 WHERE item = 2;
