-- Permission flags granted to a principal, one row per flag (for example `can_add_user`).
-- Granting is an INSERT and revoking a DELETE; no `principals` row is required.
CREATE TABLE principal_flags (
    pool TEXT NOT NULL,
    subject TEXT NOT NULL,
    flag TEXT NOT NULL,
    PRIMARY KEY (pool, subject, flag)
);
