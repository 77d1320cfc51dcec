-- (PostgreSQL numbers movements in written order by a column of its own; SQLite's row ID is
-- that order already.)
SELECT 1;
