-- The AuthZEN interop search scenario's data (github.com/openid/authzen,
-- interop/authzen-interop-website/docs/scenarios/search): six users of pool `search`, their
-- role as a group and their department as an attribute, and twenty records.

INSERT INTO principals (pool, subject) VALUES
    ('search', 'alice'),
    ('search', 'bob'),
    ('search', 'carol'),
    ('search', 'dan'),
    ('search', 'erin'),
    ('search', 'felix');

INSERT INTO principal_groups (pool, subject, group_name) VALUES
    ('search', 'alice', 'manager'),
    ('search', 'bob', 'employee'),
    ('search', 'carol', 'contractor'),
    ('search', 'dan', 'manager'),
    ('search', 'erin', 'employee'),
    ('search', 'felix', 'contractor');

INSERT INTO principal_attributes (pool, subject, name, value) VALUES
    ('search', 'alice', 'department', 'Sales'),
    ('search', 'bob', 'department', 'Legal'),
    ('search', 'carol', 'department', 'Legal'),
    ('search', 'dan', 'department', 'Finance'),
    ('search', 'erin', 'department', 'Finance'),
    ('search', 'felix', 'department', 'Accounting');

-- Ids are text: AuthZEN ids are strings, and the filter pages through them in text order.
CREATE TABLE records (
    id TEXT PRIMARY KEY,
    title TEXT,
    department TEXT NOT NULL,
    owner TEXT NOT NULL
);

INSERT INTO records (id, title, department, owner) VALUES
    ('101', 'Hamlet', 'Legal', 'alice'),
    ('102', 'Othello', 'Legal', 'bob'),
    ('103', 'Macbeth', 'Legal', 'carol'),
    ('104', 'King Lear', 'Accounting', 'dan'),
    ('105', 'Romeo and Juliet', 'Legal', 'erin'),
    ('106', 'A Midsummer Night''s Dream', 'Accounting', 'felix'),
    ('107', 'The Tempest', 'Sales', 'alice'),
    ('108', 'Twelfth Night', 'Legal', 'bob'),
    ('109', 'Julius Caesar', 'Accounting', 'carol'),
    ('110', 'As You Like It', 'Sales', 'dan'),
    ('111', 'Much Ado About Nothing', 'Accounting', 'erin'),
    ('112', 'The Merchant of Venice', 'Legal', 'felix'),
    ('113', 'Henry V', 'Sales', 'alice'),
    ('114', 'Richard III', 'Accounting', 'bob'),
    ('115', 'Coriolanus', 'Finance', 'carol'),
    ('116', 'Taming of the Shrew', 'Legal', 'dan'),
    ('117', 'Antony and Cleopatra', 'Legal', 'erin'),
    ('118', 'Measure for Measure', 'Accounting', 'felix'),
    ('119', 'The Winter''s Tale', 'Legal', 'alice'),
    ('120', 'All''s Well That Ends Well', 'Accounting', 'bob');
