-- One row per billed provider attempt. ReplacingMergeTree collapses rows that share
-- the sorting key; record_id is in it, and a redelivered record is byte-identical
-- (same created_at, same partition), so duplicates merge away. Read with FINAL
-- (or through costs_daily) so that a not-yet-merged duplicate never counts twice.
CREATE TABLE IF NOT EXISTS costs
(
    record_id           String,
    request_id          String,
    attempt             UInt16,
    tenant              LowCardinality(String),
    feature             LowCardinality(String),
    user                String,
    task                LowCardinality(String),
    tier                LowCardinality(String),
    model               LowCardinality(String),
    provider            LowCardinality(String),
    status              LowCardinality(String),
    error_type          LowCardinality(String),
    input_tokens        UInt32,
    cached_input_tokens UInt32,
    cache_write_tokens  UInt32,
    output_tokens       UInt32,
    cost_usd            Decimal(18, 9),
    latency_ms          Float32,
    reasons             Array(String),
    created_at          DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant, toDate(created_at), record_id)
