-- The response cache: a request answered from it bills nothing (cost_usd 0, no tokens)
-- and its row says what the answer cost when it was first served, in saved_usd; every
-- provider attempt's row reads 0, as do rows written before the column. costs_daily is
-- replaced to sum it; its earlier columns keep their names and order, saved_usd comes last.
ALTER TABLE costs
    ADD COLUMN IF NOT EXISTS saved_usd Decimal(18, 9) DEFAULT 0;

CREATE OR REPLACE VIEW costs_daily AS
SELECT
    toDate(created_at)         AS day,
    tenant,
    model,
    tier,
    feature,
    count()                    AS calls,
    uniqExact(request_id)      AS requests,
    sum(input_tokens)          AS input_tokens,
    sum(cached_input_tokens)   AS cached_input_tokens,
    sum(output_tokens)         AS output_tokens,
    sum(cost_usd)              AS cost_usd,
    sum(cache_write_tokens)    AS cache_write_tokens,
    sum(cache_write_1h_tokens) AS cache_write_1h_tokens,
    sum(saved_usd)             AS saved_usd
FROM costs FINAL
GROUP BY day, tenant, model, tier, feature;
