-- The resource taxonomy (DOMAIN.md §3): categories and kinds with stable English codes and
-- Japanese names. Seed rows have tenant NULL; a tenant adds kinds of its own (taxonomy.kind.create).
CREATE TABLE registry.categories (
    code     text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,63}$'),
    name_ja  text NOT NULL,
    name_en  text NOT NULL,
    sort     int NOT NULL
);

CREATE TABLE registry.kinds (
    code           text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]{1,63}$'),
    category_code  text NOT NULL REFERENCES registry.categories (code),
    name_ja        text NOT NULL CHECK (name_ja <> ''),
    name_en        text NOT NULL DEFAULT '',
    tenant         text,
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX kinds_category ON registry.kinds (category_code);

-- What a consultation window takes (相談の種類).
CREATE TABLE registry.consultation_types (
    code     text PRIMARY KEY,
    name_ja  text NOT NULL,
    name_en  text NOT NULL
);

INSERT INTO registry.categories (code, name_ja, name_en, sort) VALUES
('medical', '医療', 'Medical care', 1),
('disability_welfare', '障害福祉', 'Disability welfare services', 2),
('long_term_care', '介護', 'Long-term care', 3),
('housing', '住まい', 'Housing', 4),
('consultation', '相談', 'Consultation', 5),
('participation_employment', '社会参加・就労', 'Social participation and employment', 6),
('mutual_help', '地域の助け合い', 'Mutual help in the community', 7),
('awareness', '普及啓発', 'Public awareness and education', 8);

INSERT INTO registry.kinds (code, category_code, name_ja, name_en) VALUES
('family_doctor', 'medical', 'かかりつけ医', 'Family doctor'),
('clinic_with_beds', 'medical', '有床診療所', 'Clinic with beds'),
('psychiatric_day_care', 'medical', '精神科デイケア', 'Psychiatric day care'),
('psychiatric_home_nursing', 'medical', '精神科訪問看護', 'Psychiatric home-visit nursing'),
('partner_hospital', 'medical', '地域の連携病院', 'Partner hospital'),
('dental', 'medical', '歯科医療', 'Dental care'),
('pharmacy', 'medical', '薬局', 'Pharmacy'),
('hospital_acute', 'medical', '病院（急性期）', 'Hospital (acute)'),
('hospital_recovery', 'medical', '病院（回復期）', 'Hospital (recovery)'),
('hospital_chronic', 'medical', '病院（慢性期）', 'Hospital (chronic)'),
('psychiatric_institution', 'medical', '精神科医療機関', 'Psychiatric institution'),
('home_care', 'disability_welfare', '居宅介護', 'Home care'),
('daily_life_care', 'disability_welfare', '生活介護', 'Daily-life care'),
('short_stay', 'disability_welfare', '短期入所', 'Short stay'),
('continuous_employment_support', 'disability_welfare', '就労継続支援', 'Continuous employment support'),
('independence_training', 'disability_welfare', '自立訓練', 'Independence training'),
('facility_residential_support', 'disability_welfare', '施設入所支援', 'Residential support in a facility'),
('group_home', 'disability_welfare', '共同生活援助（グループホーム）', 'Group home'),
('residential_independence_training', 'disability_welfare', '宿泊型自立訓練', 'Residential independence training'),
('community_life_support_hub', 'disability_welfare', '地域生活支援拠点', 'Community-life support hub'),
('home_help', 'long_term_care', '訪問介護', 'Home help'),
('home_nursing', 'long_term_care', '訪問看護', 'Home-visit nursing'),
('day_service', 'long_term_care', '通所介護', 'Day service'),
('small_multifunctional_care', 'long_term_care', '小規模多機能型居宅介護', 'Small multifunctional home care'),
('short_stay_care', 'long_term_care', '短期入所生活介護', 'Short-stay care'),
('welfare_equipment', 'long_term_care', '福祉用具', 'Welfare equipment'),
('round_the_clock_visits', 'long_term_care', '24時間対応の訪問サービス', 'Round-the-clock home visits'),
('special_nursing_home', 'long_term_care', '介護老人福祉施設', 'Special nursing home for the elderly'),
('geriatric_health_facility', 'long_term_care', '介護老人保健施設', 'Geriatric health services facility'),
('dementia_group_home', 'long_term_care', '認知症対応型共同生活介護', 'Group home for people with dementia'),
('preventive_care', 'long_term_care', '介護予防サービス', 'Preventive long-term care'),
('own_or_rented_home', 'housing', '自宅・賃貸住宅', 'Own or rented home'),
('public_housing', 'housing', '公営住宅', 'Public housing'),
('serviced_elderly_housing', 'housing', 'サービス付き高齢者向け住宅', 'Serviced housing for the elderly'),
('group_home_housing', 'housing', 'グループホーム', 'Group home (housing)'),
('municipal_window', 'consultation', '市町村（精神保健福祉相談）', 'Municipal mental-health and welfare window'),
('core_consultation_center', 'consultation', '基幹相談支援センター', 'Core consultation support centre'),
('community_general_support_center', 'consultation', '地域包括支援センター', 'Community general support centre'),
('public_health_center', 'consultation', '保健所', 'Public health centre'),
('mental_health_welfare_center', 'consultation', '精神保健福祉センター', 'Mental health and welfare centre'),
('developmental_disability_center', 'consultation', '発達障害者支援センター', 'Developmental disability support centre'),
('employment_life_support_center', 'consultation', '障害者就業・生活支援センター', 'Employment and life support centre'),
('hello_work', 'consultation', 'ハローワーク', 'Public employment security office (Hello Work)'),
('consultation_support_provider', 'consultation', '指定一般・特定相談支援事業者（地域援助事業者）', 'Designated consultation support provider'),
('employer', 'participation_employment', '企業', 'Employer'),
('peer_support', 'participation_employment', 'ピア・サポート', 'Peer support'),
('employment_transition_support', 'participation_employment', '就労移行支援', 'Employment transition support'),
('neighbourhood_association', 'mutual_help', '自治会', 'Neighbourhood association'),
('volunteer', 'mutual_help', 'ボランティア', 'Volunteers'),
('npo', 'mutual_help', 'NPO', 'Non-profit organisation'),
('public_education', 'awareness', '普及啓発・教育', 'Public education');

INSERT INTO registry.consultation_types (code, name_ja, name_en) VALUES
('general', '一般（精神保健福祉）', 'General mental health and welfare'),
('disability', '障害', 'Disability'),
('elderly', '高齢', 'Elderly'),
('specialist_mental_health', '専門的な精神保健', 'Specialist mental health'),
('complex_cases', '複雑・困難な事例', 'Complex and difficult cases'),
('developmental', '発達障害', 'Developmental disorders'),
('employment', '就労', 'Employment');
