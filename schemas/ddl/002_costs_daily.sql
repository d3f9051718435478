-- Daily spend by tenant, model, tier and feature. A view over the deduplicated
-- rows (FINAL) rather than a materialized view: an insert-time rollup would add a
-- redelivered record a second time, before the merge removes it from `costs`.
CREATE VIEW IF NOT EXISTS costs_daily AS
SELECT
    toDate(created_at)       AS day,
    tenant,
    model,
    tier,
    feature,
    count()                  AS calls,
    uniqExact(request_id)    AS requests,
    sum(input_tokens)        AS input_tokens,
    sum(cached_input_tokens) AS cached_input_tokens,
    sum(output_tokens)       AS output_tokens,
    sum(cost_usd)            AS cost_usd
FROM costs FINAL
GROUP BY day, tenant, model, tier, feature
