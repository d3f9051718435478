"""Serving: one routed request through its candidates until one answers.

`serve` is the entry; `walk` tries candidates cheapest first with retries, backoff and
fallback, billing every attempt; `cascade` answers from the cheap tier first and
escalates when `answer_check` finds the answer wanting. Imports `providers`, `routing`,
`pricing` and `errors`.
"""
