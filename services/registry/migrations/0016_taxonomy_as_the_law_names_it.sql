-- The taxonomy as the law names it (issue 9, part 4). Kinds are split, merged, moved and added so
-- that each names one thing the law names; every resource that used a changed kind keeps what it
-- meant, as a new version.
--
-- Categories, decided by what each kind is in law:
--   disability_welfare  障害福祉サービス (障害者総合支援法 第5条第1項): 自立訓練（機能訓練）,
--                       自立訓練（生活訓練）, 就労移行支援 (moved here from participation_employment),
--                       就労継続支援A型・B型, 就労定着支援, 自立生活援助, 共同生活援助. Also kept here,
--                       though not 障害福祉サービス: 地域生活支援拠点等 (a function a municipality
--                       builds, 第77条第4項) and 地域活動支援センター (地域生活支援事業, 第5条第27項):
--                       both are disability welfare; neither has a grouping.
--   consultation        相談支援 and the windows people consult: 指定一般相談支援事業者 (地域相談支援),
--                       指定特定相談支援事業者 (計画相談支援), 指定障害児相談支援事業者 (児童福祉法 障害児相談支援)
--                       (the two 指定…相談支援事業者 are the 精神保健福祉法's 地域援助事業者, with
--                       居宅介護支援事業者); the services 地域移行支援, 地域定着支援 (地域相談支援) and
--                       計画相談支援, which are 相談支援 (第5条第18項), not 障害福祉サービス;
--                       市町村保健センター (地域保健法 第18条); 都道府県本庁, the prefecture's own office
--                       (the prefecture-level 協議の場 and the window behind 保健所 and 精神保健福祉センター).
--   medical             精神科救急情報センター: part of the prefecture's psychiatric emergency care system
--                       (精神保健福祉法 第19条の11); it finds the hospital for an emergency.
--   housing             居住支援法人 and 居住支援協議会 (住宅セーフティネット法 第40条, 第51条).
--   mutual_help         家族会 (families' associations).
-- One group home: 共同生活援助（グループホーム） (`group_home`, disability_welfare) stays;
-- `group_home_housing` (housing, グループホーム) is merged into it.
--
-- Grouping (the seed's 在宅系 / 施設・居住系, DOMAIN.md §3), for services of disability_welfare and
-- long_term_care: 'residential' for 施設入所支援, 共同生活援助, 宿泊型自立訓練, 介護老人福祉施設,
-- 介護老人保健施設, 認知症対応型共同生活介護; 'home_based' for the other services. NULL for
-- everything else, and for 地域生活支援拠点等, 地域活動支援センター and 介護予防サービス (prevention,
-- whose services are of both kinds).
--
-- Resources: a kind that is split is replaced by both new kinds in its place (nothing lost); a
-- merged one by the kind it merged into. A resource whose kind now belongs to another category
-- (就労移行支援, or グループホーム merged into 共同生活援助) follows it into that category, and
-- keeps only the kinds of its new category (a resource's kinds are always of its category). Each
-- resource so changed, of any tenant, retired or not, becomes a new version: version + 1,
-- updated_at now, a history row with change 'taxonomy_changed' and changed_by 'migration:0016'
-- (its previous version, in history, keeps the old category and kinds), and a
-- jp.tsunagu.registry.resource.changed event in the outbox (numbered by the publisher).

-- Resource writes (and new tenant kinds) wait until this is done: none can slip in with a kind
-- removed here. Reads go on.
LOCK TABLE registry.resources, registry.kinds IN EXCLUSIVE MODE;

ALTER TABLE registry.kinds ADD COLUMN grouping text CHECK (grouping IN ('home_based', 'residential'));
COMMENT ON COLUMN registry.kinds.grouping IS 'home_based 在宅系, residential 施設・居住系; NULL when neither';

ALTER TABLE registry.resource_history DROP CONSTRAINT resource_history_change_check;
ALTER TABLE registry.resource_history ADD CONSTRAINT resource_history_change_check
    CHECK (change IN ('created', 'updated', 'retired', 'vacancies', 'area_removed', 'taxonomy_changed'));

-- 就労移行支援 is a 障害福祉サービス; 地域生活支援拠点等 is the law's name.
UPDATE registry.kinds SET category_code = 'disability_welfare' WHERE code = 'employment_transition_support';
UPDATE registry.kinds SET name_ja = '地域生活支援拠点等', name_en = 'Community-life support hubs and networks'
WHERE code = 'community_life_support_hub';

-- The new kinds. They take the seed's created_at, so taxonomy.list shows the seed in code order as
-- before. A tenant's own kind that already has one of these codes becomes the seed kind (a
-- resource using it follows its category, below).
INSERT INTO registry.kinds (code, category_code, name_ja, name_en, grouping, created_at)
SELECT v.code, v.category_code, v.name_ja, v.name_en, v.grouping,
       coalesce((SELECT min(created_at) FROM registry.kinds WHERE tenant IS NULL), now())
FROM (VALUES
    ('independence_training_functional', 'disability_welfare', '自立訓練（機能訓練）', 'Independence training (functional)', 'home_based'),
    ('independence_training_daily_living', 'disability_welfare', '自立訓練（生活訓練）', 'Independence training (daily living)', 'home_based'),
    ('continuous_employment_support_a', 'disability_welfare', '就労継続支援A型', 'Continuous employment support (type A)', 'home_based'),
    ('continuous_employment_support_b', 'disability_welfare', '就労継続支援B型', 'Continuous employment support (type B)', 'home_based'),
    ('employment_retention_support', 'disability_welfare', '就労定着支援', 'Employment retention support', 'home_based'),
    ('independent_living_assistance', 'disability_welfare', '自立生活援助', 'Independent living assistance', 'home_based'),
    ('community_activity_support_center', 'disability_welfare', '地域活動支援センター', 'Community activity support centre', NULL),
    ('general_consultation_support_provider', 'consultation', '指定一般相談支援事業者', 'Designated general consultation support provider', NULL),
    ('specific_consultation_support_provider', 'consultation', '指定特定相談支援事業者', 'Designated specific consultation support provider', NULL),
    ('child_consultation_support_provider', 'consultation', '指定障害児相談支援事業者', 'Designated consultation support provider for children with disabilities', NULL),
    ('community_transition_support', 'consultation', '地域移行支援', 'Community transition support', NULL),
    ('community_settlement_support', 'consultation', '地域定着支援', 'Community settlement support', NULL),
    ('planning_consultation_support', 'consultation', '計画相談支援', 'Consultation support for service-use plans', NULL),
    ('municipal_health_center', 'consultation', '市町村保健センター', 'Municipal health centre', NULL),
    ('prefectural_office', 'consultation', '都道府県本庁', 'Prefectural government office', NULL),
    ('psychiatric_emergency_information_center', 'medical', '精神科救急情報センター', 'Psychiatric emergency information centre', NULL),
    ('housing_support_corporation', 'housing', '居住支援法人', 'Housing support corporation', NULL),
    ('housing_support_council', 'housing', '居住支援協議会', 'Housing support council', NULL),
    ('family_association', 'mutual_help', '家族会', 'Families'' association', NULL)
) AS v (code, category_code, name_ja, name_en, grouping)
ON CONFLICT (code) DO UPDATE SET category_code = EXCLUDED.category_code, name_ja = EXCLUDED.name_ja,
    name_en = EXCLUDED.name_en, grouping = EXCLUDED.grouping, tenant = NULL;

UPDATE registry.kinds k SET grouping = v.grouping
FROM (VALUES
    ('home_care', 'home_based'), ('daily_life_care', 'home_based'), ('short_stay', 'home_based'),
    ('employment_transition_support', 'home_based'),
    ('facility_residential_support', 'residential'), ('group_home', 'residential'),
    ('residential_independence_training', 'residential'),
    ('home_help', 'home_based'), ('home_nursing', 'home_based'), ('day_service', 'home_based'),
    ('small_multifunctional_care', 'home_based'), ('short_stay_care', 'home_based'),
    ('welfare_equipment', 'home_based'), ('round_the_clock_visits', 'home_based'),
    ('special_nursing_home', 'residential'), ('geriatric_health_facility', 'residential'),
    ('dementia_group_home', 'residential')
) AS v (code, grouping)
WHERE k.code = v.code;

-- Resources, in one statement: map the kinds (a split kind becomes its parts in its place, in
-- `part` order, duplicates dropped), follow a seed kind now of another category (the first in
-- the resource's kinds order; tenant kinds never change category), keep the kinds of the new
-- category, and write the changed rows with their history and events.
WITH replaced (old_code, new_code, part) AS (VALUES
    ('consultation_support_provider', 'general_consultation_support_provider', 1),
    ('consultation_support_provider', 'specific_consultation_support_provider', 2),
    ('independence_training', 'independence_training_functional', 1),
    ('independence_training', 'independence_training_daily_living', 2),
    ('continuous_employment_support', 'continuous_employment_support_a', 1),
    ('continuous_employment_support', 'continuous_employment_support_b', 2),
    ('group_home_housing', 'group_home', 1)
),
mapped AS (
    SELECT r.id, r.category_code AS old_category,
           ARRAY(SELECT x.code FROM (
                     SELECT coalesce(m.new_code, u.code) AS code, min(u.ord * 10 + coalesce(m.part, 0)) AS place
                     FROM unnest(r.kinds) WITH ORDINALITY AS u (code, ord) LEFT JOIN replaced m ON m.old_code = u.code
                     GROUP BY 1) x
                 ORDER BY x.place) AS kinds
    FROM registry.resources r
),
followed AS (
    SELECT m.id, m.old_category, m.kinds,
           coalesce((SELECT k.category_code FROM unnest(m.kinds) WITH ORDINALITY AS u (code, ord)
                     JOIN registry.kinds k ON k.code = u.code AND k.tenant IS NULL
                     WHERE k.category_code <> m.old_category ORDER BY u.ord LIMIT 1), m.old_category) AS category_code
    FROM mapped m
),
target AS (
    SELECT f.id, f.category_code,
           CASE WHEN f.category_code = f.old_category THEN f.kinds
                ELSE ARRAY(SELECT u.code FROM unnest(f.kinds) WITH ORDINALITY AS u (code, ord)
                           WHERE EXISTS (SELECT 1 FROM registry.kinds k WHERE k.code = u.code AND k.category_code = f.category_code)
                           ORDER BY u.ord) END AS kinds
    FROM followed f
),
changed AS (
    UPDATE registry.resources r SET category_code = t.category_code, kinds = t.kinds, version = r.version + 1, updated_at = now()
    FROM target t
    WHERE r.id = t.id AND (r.category_code, r.kinds) IS DISTINCT FROM (t.category_code, t.kinds)
    RETURNING r.*
),
history AS (
    INSERT INTO registry.resource_history (resource_id, version, changed_by, change, snapshot)
    SELECT c.id, c.version, 'migration:0016', 'taxonomy_changed', to_jsonb(c) - 'search_text' FROM changed c
)
-- The payload is Resources.eventDataSQL's.
INSERT INTO registry.outbox (type, subject, tenant, data)
SELECT 'jp.tsunagu.registry.resource.changed', 'resources/' || r.id, r.tenant,
       jsonb_build_object('id', r.id, 'tenant', r.tenant, 'version', r.version, 'name', r.name,
                          'category_code', r.category_code, 'kinds', r.kinds, 'municipality_code', r.municipality_code,
                          'retired_at', r.retired_at)
FROM changed r ORDER BY r.id;

-- No resource uses these any more.
DELETE FROM registry.kinds
WHERE code IN ('consultation_support_provider', 'independence_training', 'continuous_employment_support', 'group_home_housing');
