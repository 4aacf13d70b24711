-- Rule 21: emails match by ASCII case folding only, so that a look-alike letter (K, KELVIN SIGN) never
-- folds onto another member's address. lower() would fold by the database's locale; translate() folds ASCII.
UPDATE members
SET email_key = translate(btrim(email), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
WHERE email_key <> translate(btrim(email), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz');
