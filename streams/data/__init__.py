"""Data files shipped with the package: the demo workload (`workload.jsonl`)."""
