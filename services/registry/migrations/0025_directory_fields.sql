-- What a directory others read needs (issue 9): typed phones beside the main `phone`, languages
-- (ISO 639 codes, `jsl` 日本手話 among them), accessibility, eligibility and fees as text, the
-- 事業所番号 (`office_number`, 10 digits), when and by which role or office the record was last
-- verified, and whether the service is open (`status`). Organisations get their 法人番号
-- (`corporate_number`, 13 digits). `staff_phone` and `staff_address` are for the owning tenant's
-- staff only (a direct line, a group home's street address): the API shows them to the tenant's
-- writers and national admins alone, and no search, export or event carries them.
ALTER TABLE registry.resources
    ADD COLUMN phones jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN languages text[] NOT NULL DEFAULT '{}',
    ADD COLUMN accessibility text NOT NULL DEFAULT '',
    ADD COLUMN eligibility text NOT NULL DEFAULT '',
    ADD COLUMN fees text NOT NULL DEFAULT '',
    ADD COLUMN office_number text NOT NULL DEFAULT '' CHECK (office_number ~ '^([0-9]{10})?$'),
    ADD COLUMN last_verified_at date,
    ADD COLUMN last_verified_by text NOT NULL DEFAULT '',
    ADD COLUMN status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'temporarily_closed')),
    ADD COLUMN staff_phone text NOT NULL DEFAULT '',
    ADD COLUMN staff_address text NOT NULL DEFAULT '';
ALTER TABLE registry.organizations
    ADD COLUMN corporate_number text NOT NULL DEFAULT '' CHECK (corporate_number ~ '^([0-9]{13})?$');
