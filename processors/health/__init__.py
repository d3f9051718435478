"""What tierline observes of each (provider, model) and feeds back into the next decision:
its circuit breaker, its latency window, its rate budgets, and the announced limits."""
