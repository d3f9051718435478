"""The store: ClickHouse, where every bill and quality signal lands and spend is read.

`clickhouse` connects (a server over HTTP, or chDB embedded), applies the migrations
and inserts rows whose columns the models define; `spend` holds the queries behind
`tierline spend`. No Kafka here: the sinks in `streams` feed it. Imports `pricing`.
"""
