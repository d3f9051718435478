"""Pure decisions and provider I/O, no Kafka: classification, policy, catalog,
prices and cost, provider adapters, retry primitives, the provider simulator.

Imports only `schemas`.
"""
