"""Serving: one routed request through its candidates until one answers.

`serve` is the entry; `walk` tries candidates cheapest first with retries, backoff and
fallback, billing every attempt; `cascade` answers from the cheap tier first and
escalates when `answer_check` finds the answer wanting; `response_cache` answers a
repeated cacheable request with no provider call (`cache_key`, `cache_store`). Imports
`providers`, `routing`, `pricing` and `errors`.
"""
