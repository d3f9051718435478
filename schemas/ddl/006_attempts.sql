-- Every provider call, twice: `started` before the call, `settled` with its answer
-- (tierline.attempts). ReplacingMergeTree(created_at) keeps the later row per attempt,
-- so an attempt whose newest row is still `started` (read with FINAL) was cut off by a
-- crash: the provider may have billed it, and no cost record says so. Partitioned by
-- month like costs: both rows of an attempt are written seconds apart.
CREATE TABLE IF NOT EXISTS attempts
(
    attempt_id          String,
    request_id          String,
    tenant              LowCardinality(String),
    tier                LowCardinality(String),
    model               LowCardinality(String),
    provider            LowCardinality(String),
    state               LowCardinality(String),
    estimated_cost_usd  Decimal(18, 9),
    created_at          DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(created_at)
PARTITION BY toYYYYMM(created_at)
ORDER BY (tenant, attempt_id)
