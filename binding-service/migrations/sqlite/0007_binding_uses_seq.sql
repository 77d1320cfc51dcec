-- PostgreSQL takes use positions from a sequence from here on; behind SQLite's single
-- writer the highest position so far plus one stays safe. Nothing changes here.
SELECT 1;
