-- What a backer does for the one it backs up (backup.link `roles`): 技術的助言 (technical advice),
-- taking over difficult cases (困難事例への対応), 人材育成・研修 (training).
ALTER TABLE registry.backups ADD COLUMN roles text[] NOT NULL DEFAULT '{}'
    CHECK (roles <@ ARRAY['technical_advice', 'difficult_cases', 'training']::text[]);
