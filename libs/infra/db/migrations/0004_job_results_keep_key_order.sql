-- A job's results are what exports render, one column per key in the order the producer
-- sent them. jsonb re-orders object keys (shortest first), so a manual export of a stored
-- job would get other columns than the automatic one; json keeps the text as sent.
ALTER TABLE mapping_jobs ALTER COLUMN results TYPE json USING results::json;
