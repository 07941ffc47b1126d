"""Background work: the webhook dispatcher, the expiry sweeper and event retention."""
