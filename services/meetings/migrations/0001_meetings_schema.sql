-- The meetings service's schema is made by deploy/database-roles.sql (owned by tsunagu_meetings);
-- this first migration only says what it holds.
COMMENT ON SCHEMA meetings IS 'Tsunagu meetings: consultation meetings (協議の場), cases under pseudonyms, regional issues';
