-- What the router decided for each request and the features it decided on (the quality
-- loop's training data), one row per request: `tierline train --from-clickhouse` joins it
-- to `decisions` (where it was served, what it cost, what feedback said) by request id.
-- No prompt text unless `[learning] store_prompts = true`: the terms are hashed ids.
-- ReplacingMergeTree: a redelivered record is the same row. Read with FINAL.
CREATE TABLE IF NOT EXISTS request_features
(
    request_id  String,
    tenant      LowCardinality(String),
    feature     LowCardinality(String),
    task        LowCardinality(String),
    tier        LowCardinality(String),
    classifier  LowCardinality(String),
    artifact    LowCardinality(String),
    score       Float64,
    confidence  Float64,
    hashing     LowCardinality(String),
    term_ids    Array(UInt32),
    term_counts Array(UInt16),
    dense       Array(Float64),
    dense_names Array(String),
    prompt      String,
    created_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant, request_id)
