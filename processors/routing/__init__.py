"""Routing: from a request's bytes to its tier and candidates, a pure decision.

`intake` admits or rejects raw input (strict JSON, the contract); `classifiers`
score how likely a cheap model falls short; `tier_rules` turns the score into a tier
within the request's hints; `policy` (with its file and hot reload) adds tenants,
floors, cascades, experiments and sensitive-data screening; `decide` puts it together.
`reply_topics` says which `reply_to` a tenant may name. Imports `pricing` and `errors`.
"""
