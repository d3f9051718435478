-- Quality signals from applications (tierline.feedback), one current row per request and
-- source. ReplacingMergeTree(created_at) collapses rows that share the sorting key and
-- keeps the latest: a redelivered signal is stored once, a newer signal from the same
-- source replaces the older. Ordered by request_id first, the key costs are joined on.
-- Not partitioned: rows collapse only within a partition, and a correction may come
-- months after the signal it replaces. Read with FINAL (or through `decisions`).
CREATE TABLE IF NOT EXISTS feedback
(
    request_id  String,
    source      LowCardinality(String),
    tenant      LowCardinality(String),
    score       Nullable(Float64),
    label       LowCardinality(String),
    created_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (request_id, source)
