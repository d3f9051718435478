"""How soon a transactional producer retries a transaction begun while the last one ends.

A commit returns once the coordinator has logged it; the coordinator then writes
the commit markers to every partition the transaction touched. Until it has, the
next transaction's first AddPartitionsToTxn is refused with CONCURRENT_TRANSACTIONS
(KAFKA-5477). aiokafka retries that after a fixed 20 ms (`sender.BACKOFF_OVERRIDE`,
no public setting), and an outbox that commits back to back under load pays it on
nearly every transaction: `python bench/transactions.py` on a local Kafka 4 broker
(50 sends, the offsets, the commit) measured 27.6 ms p50 with it, 8.2 ms with a 2 ms
retry. The markers take a few ms, so a short retry costs a few extra small requests
per transaction.

`kafka.transaction_retry_ms` sets it, once per process, before producers start.
"""

from __future__ import annotations

import logging

import aiokafka
from aiokafka.producer import sender

log = logging.getLogger("tierline.kafka")

#: the attribute aiokafka's sender reads for this retry (aiokafka 0.8 through 0.14)
_KNOB = "BACKOFF_OVERRIDE"


def set_concurrent_transaction_retry(retry_ms: int) -> bool:
    """Retry CONCURRENT_TRANSACTIONS after `retry_ms`; False (and a warning) if this
    aiokafka has no such knob, in which case its own backoff stays."""
    if not isinstance(getattr(sender, _KNOB, None), float | int):
        log.warning(
            "aiokafka %s has no sender.%s: transactions begun right after a commit wait "
            "its built-in backoff",
            aiokafka.__version__,
            _KNOB,
        )
        return False
    setattr(sender, _KNOB, retry_ms / 1000)
    return True
