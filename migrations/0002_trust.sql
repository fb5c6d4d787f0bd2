-- Trust: API keys, consent, erasure suppression, access log.

-- One row per deployment: secrets shared by every replica.
CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- API keys. Only a keyed BLAKE3 hash of the secret part is stored.
CREATE TABLE api_keys (
    key_id      TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL,
    secret_hash TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- Consent per customer and purpose, as last recorded.
CREATE TABLE consents (
    customer_id TEXT NOT NULL REFERENCES customers (customer_id),
    purpose     TEXT NOT NULL,
    granted     BIGINT NOT NULL,
    source      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (customer_id, purpose)
);

-- Identities of erased customers, as keyed hashes only: later data naming
-- any of them is dropped at ingestion.
CREATE TABLE suppressions (
    identity_hash TEXT PRIMARY KEY,
    created_at    BIGINT NOT NULL
);

-- Who read which customer's data, through which key and RPC.
CREATE TABLE access_log (
    entry_id     TEXT PRIMARY KEY,
    at           BIGINT NOT NULL,
    key_id       TEXT NOT NULL,
    key_name     TEXT NOT NULL,
    role         TEXT NOT NULL,
    rpc          TEXT NOT NULL,
    customer_id  TEXT,
    anonymous_id TEXT
);
CREATE INDEX access_log_customer ON access_log (customer_id, at DESC) WHERE customer_id IS NOT NULL;
CREATE INDEX access_log_anonymous ON access_log (anonymous_id, at DESC) WHERE anonymous_id IS NOT NULL;
