"""Kafka wiring: the faust router, the aiokafka tier workers, the cost sink, the CLI.

Layers point one way: streams -> processors -> schemas. Nothing outside this
package imports Kafka.
"""
