"""Background work: the expiry sweeper (and the webhook dispatcher)."""
