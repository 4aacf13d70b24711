-- The keys stay ASCII-folded: a key folded further could merge two members' addresses.
SELECT 1;
