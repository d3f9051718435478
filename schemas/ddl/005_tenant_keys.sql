-- Request ids are the client's, unique per tenant only: feedback is keyed by
-- (tenant, request_id, source), and `decisions` joins costs to feedback on tenant and
-- id, so tenant B's signal about its request "r1" never lands on tenant A's "r1".
-- ClickHouse cannot put a new column first in a sorting key, so the table is rebuilt:
-- created anew, filled from the old one, swapped in by name.
CREATE TABLE IF NOT EXISTS feedback_by_tenant
(
    request_id  String,
    source      LowCardinality(String),
    tenant      LowCardinality(String),
    score       Nullable(Float64),
    label       LowCardinality(String),
    created_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (tenant, request_id, source);

INSERT INTO feedback_by_tenant
SELECT request_id, source, tenant, score, label, created_at FROM feedback;

DROP VIEW IF EXISTS decisions;

RENAME TABLE feedback TO feedback_before_tenant_keys, feedback_by_tenant TO feedback;

DROP TABLE feedback_before_tenant_keys;

CREATE VIEW decisions AS
SELECT
    c.request_id            AS request_id,
    c.tenant                AS tenant,
    c.feature               AS feature,
    c.task                  AS task,
    c.tier                  AS tier,
    c.model                 AS model,
    c.provider              AS provider,
    c.calls                 AS calls,
    c.cost_usd              AS cost_usd,
    c.reasons               AS reasons,
    c.created_at            AS created_at,
    f.signals               AS feedback_signals,
    f.score                 AS feedback_score,
    f.labels                AS feedback_labels
FROM
(
    SELECT
        tenant,
        request_id,
        any(feature)                AS feature,
        any(task)                   AS task,
        argMax(tier, attempt)       AS tier,
        argMax(model, attempt)      AS model,
        argMax(provider, attempt)   AS provider,
        count()                     AS calls,
        sum(cost_usd)               AS cost_usd,
        argMax(reasons, attempt)    AS reasons,
        min(created_at)             AS created_at
    FROM costs FINAL
    GROUP BY tenant, request_id
) AS c
LEFT JOIN
(
    SELECT
        tenant,
        request_id,
        count()                                             AS signals,
        if(count(score) > 0, avg(score), NULL)              AS score,
        arraySort(groupUniqArrayIf(label, label != ''))     AS labels
    FROM feedback FINAL
    GROUP BY tenant, request_id
) AS f ON c.tenant = f.tenant AND c.request_id = f.request_id;
