-- An operator's data migration: grants and registrations kept in version control and applied
-- by `poolgate migrate` (set `database.data_migrations` to this folder).
-- Versions are timestamps, so they never collide with poolgate's own schema migrations.
INSERT INTO principals (pool, subject, disabled, note)
VALUES ('merchant', 'mia', FALSE, 'stock manager of o1');

INSERT INTO principal_flags (pool, subject, flag)
VALUES ('merchant', 'mia', 'can_manage_stock');
