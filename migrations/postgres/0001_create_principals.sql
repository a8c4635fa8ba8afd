-- Principals known to poolgate, one row per (pool, subject); `subject` is the token's `sub`.
-- Operators write these rows with plain SQL. A user needs no row to be authorized; a row
-- carries the account switches (`disabled`, `tokens_valid_after`, epoch seconds).
CREATE TABLE principals (
    pool TEXT NOT NULL,
    subject TEXT NOT NULL,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    tokens_valid_after BIGINT,
    note TEXT,
    PRIMARY KEY (pool, subject)
);
