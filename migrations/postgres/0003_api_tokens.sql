-- API bearer tokens. Only a SHA-256 hash of each token is stored; the token
-- itself is shown once, when it is created.
CREATE TABLE api_tokens
(
    token_hash TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    -- Comma-separated wijk ids a wijkregisseur may read; empty for other roles.
    wijken     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
