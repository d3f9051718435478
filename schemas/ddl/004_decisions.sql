-- One row per request: where it was routed, what it cost (every billed attempt, a
-- cascade's two calls included), and what applications said about it afterwards.
-- `model`, `tier`, `provider` and `reasons` are those of the request's last billed
-- attempt (the answer it got); `feedback_score` is the mean score of its signals, NULL
-- when none has a score. A view over the deduplicated rows (FINAL), like costs_daily.
CREATE VIEW IF NOT EXISTS decisions AS
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
        request_id,
        any(tenant)                 AS tenant,
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
    GROUP BY request_id
) AS c
LEFT JOIN
(
    SELECT
        request_id,
        count()                                             AS signals,
        if(count(score) > 0, avg(score), NULL)              AS score,
        arraySort(groupUniqArrayIf(label, label != ''))     AS labels
    FROM feedback FINAL
    GROUP BY request_id
) AS f ON c.request_id = f.request_id
