-- Every class of token billed, in the cost rows and the daily rollup. `costs` gains
-- cache_write_1h_tokens: of cache_write_tokens, those written to Anthropic's 1-hour cache
-- (billed at 2x input, not the 5-minute 1.25x); rows written before it read 0, as their
-- writes were all priced as 5-minute ones. costs_daily is replaced to carry the cache
-- writes beside the cached reads it already had; its earlier columns keep their names
-- and order, the new ones come after cost_usd.
ALTER TABLE costs
    ADD COLUMN IF NOT EXISTS cache_write_1h_tokens UInt32 DEFAULT 0 AFTER cache_write_tokens;

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
    sum(cache_write_1h_tokens) AS cache_write_1h_tokens
FROM costs FINAL
GROUP BY day, tenant, model, tier, feature;
