-- Bodies that run the promotion project (構築推進事業): prefectures, designated cities (指定都市),
-- special wards (特別区) and health-centre cities (保健所設置市). Prefectures and special wards
-- follow from the codes; designated cities are listed here; any other municipality taking part
-- is recorded as a health-centre city.
CREATE TABLE registry.designated_cities (
    code  char(6) PRIMARY KEY REFERENCES registry.areas (code)
);

INSERT INTO registry.designated_cities (code) VALUES
('011002'), ('041009'), ('111007'), ('121002'), ('141003'), ('141305'), ('141500'), ('151009'), ('221007'), ('221309'),
('231002'), ('261009'), ('271004'), ('271403'), ('281000'), ('331007'), ('341002'), ('401005'), ('401307'), ('431001');
