-- deliveries_by_org (organization_id) is a prefix of deliveries_by_org_created
-- (organization_id, created_at DESC, id DESC), added by 0011 for the dashboard's delivery
-- log: every lookup by organization can use the longer one. Each delivery wrote both, at its
-- insert and again at each status change (a non-HOT update); the hot path now writes one.
-- tests/libs/test_schema_indexes.py keeps the schema free of such pairs.
DROP INDEX IF EXISTS deliveries_by_org;
