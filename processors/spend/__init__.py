"""The spend loop: budgets and the ledger that reserves and reconciles them, and the
detector that flags spend far off its baseline."""
