-- The AuthZEN 1.0 certification fixture (§ Required Fixture): subjects alice and bob of pool
-- `cert` (bob with role `admin`), and the records record-1 (active) and record-2 (archived).
INSERT INTO principals (pool, subject) VALUES ('cert', 'alice'), ('cert', 'bob');

INSERT INTO principal_groups (pool, subject, group_name) VALUES ('cert', 'alice', 'writers');

INSERT INTO principal_attributes (pool, subject, name, value) VALUES ('cert', 'bob', 'role', 'admin');

CREATE TABLE cert_records (
    id TEXT PRIMARY KEY,
    status TEXT NOT NULL
);

INSERT INTO cert_records (id, status) VALUES ('record-1', 'active'), ('record-2', 'archived');
