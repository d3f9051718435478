-- Spend alerts (tierline.alerts): budget limits crossed or reached, and spend-rate
-- anomalies. ReplacingMergeTree collapses rows that share the sorting key, and the key
-- holds the alert's identity (alert_id; the tenant is part of it, first for per-tenant
-- reads), so a redelivered or re-raised alert is one row. Not partitioned: rows collapse
-- only within a partition, and a re-raised alert may carry a later created_at. Few rows.
-- Read with FINAL.
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id     String,
    kind         LowCardinality(String),
    tenant       LowCardinality(String),
    feature      LowCardinality(String),
    model        LowCardinality(String),
    period       LowCardinality(String),
    window_start DateTime64(3, 'UTC'),
    window_end   Nullable(DateTime64(3, 'UTC')),
    spent_usd    Decimal(18, 9),
    limit_usd    Decimal(18, 9),
    detail       String,
    created_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, alert_id)
