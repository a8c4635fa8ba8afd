-- Groups granted to a principal in SQL, one row per group. They join the groups of the
-- principal's token (a union), and they are the only groups of a subject named by an AuthZEN
-- trusted caller. Granting is an INSERT and revoking a DELETE; no `principals` row is required.
CREATE TABLE principal_groups (
    pool TEXT NOT NULL,
    subject TEXT NOT NULL,
    group_name TEXT NOT NULL,
    PRIMARY KEY (pool, subject, group_name)
);

-- String attributes of a principal in SQL, one row per attribute, for subjects named by an
-- AuthZEN trusted caller (a token's subject takes its attributes from the token). Only names
-- the schema declares as `String` on the pool's `User` reach the policies; `email` sets the
-- `email` attribute.
CREATE TABLE principal_attributes (
    pool TEXT NOT NULL,
    subject TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (pool, subject, name)
);
