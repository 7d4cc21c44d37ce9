-- Names read as people write them: the shipped code list gives kana in half-width katakana
-- (ﾁﾖﾀﾞｸ); shown to people they are full-width (チヨダク). NFKC turns one into the other (and
-- leaves full-width text as it is). Search is unchanged: kana_search was folded already.
UPDATE registry.areas SET kana = normalize(kana, NFKC) WHERE kana IS DISTINCT FROM normalize(kana, NFKC);
