-- Master-key rotation (services/meetings/README.md, Cases): the service moves each case's data key
-- from the previous case master key to the current one and records it in the case's audit as
-- action 'rewrap', with token_id NULL (no caller: the service itself), tenant 'national', fields
-- {data_key,key_id} (the columns written; no content is read or written) and the rewrap run's id as
-- request_id. The index serves the rewrap's batches and case.key_status's counts by key.
ALTER TABLE meetings.case_audit DROP CONSTRAINT case_audit_action_check;
ALTER TABLE meetings.case_audit ADD CONSTRAINT case_audit_action_check
    CHECK (action IN ('create', 'read', 'update', 'erase', 'list', 'audit_read', 'rewrap'));
CREATE INDEX cases_key_id ON meetings.cases (key_id) WHERE key_id IS NOT NULL;
