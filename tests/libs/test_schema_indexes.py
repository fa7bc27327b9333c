"""The migrated schema carries no index that another makes redundant: real PostgreSQL.

Every index is written at each insert, and at each update that is not HOT (a delivery's
status change is not). A plain btree index whose columns begin another plain btree index's
columns answers no lookup the longer one cannot, so it only costs writes. Unique and partial
indexes, and indexes on expressions, are exempt: they do more than speed up a lookup.
"""

from __future__ import annotations

import asyncpg

_PREFIX_PAIRS = """
WITH idx AS (
    SELECT c.relname AS tbl, i.relname AS idx,
           string_to_array(x.indkey::text, ' ')::int[] AS cols,
           x.indisunique AS uniq, x.indpred IS NOT NULL OR x.indexprs IS NOT NULL AS special
    FROM pg_index x
    JOIN pg_class i ON i.oid = x.indexrelid
    JOIN pg_class c ON c.oid = x.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_am am ON am.oid = i.relam
    WHERE n.nspname = 'public' AND am.amname = 'btree'
      AND c.relkind IN ('r', 'p') AND NOT c.relispartition
)
SELECT shorter.tbl, shorter.idx AS redundant, longer.idx AS covered_by
FROM idx shorter
JOIN idx longer ON longer.tbl = shorter.tbl AND longer.idx <> shorter.idx
WHERE NOT shorter.uniq AND NOT shorter.special AND NOT longer.special
  AND cardinality(shorter.cols) <= cardinality(longer.cols)
  AND longer.cols[1:cardinality(shorter.cols)] = shorter.cols
ORDER BY 1, 2
"""


async def test_no_index_is_a_prefix_of_another(db_pool: asyncpg.Pool) -> None:
    pairs = [tuple(row) for row in await db_pool.fetch(_PREFIX_PAIRS)]
    assert pairs == []
