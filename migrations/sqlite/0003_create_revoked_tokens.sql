-- Revoked tokens: a token whose `jti` or `origin_jti` matches a row of its pool is rejected
-- until `expires_at` (epoch seconds, normally the token's `exp`); expired rows are purged.
CREATE TABLE revoked_tokens (
    pool TEXT NOT NULL,
    jti TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (pool, jti)
);
