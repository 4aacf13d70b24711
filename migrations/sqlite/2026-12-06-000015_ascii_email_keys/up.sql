-- Rule 21: emails match by ASCII case folding only, so that a look-alike letter (K, KELVIN SIGN) never
-- folds onto another member's address. SQLite's lower() folds ASCII only.
UPDATE members SET email_key = lower(trim(email)) WHERE email_key <> lower(trim(email));
