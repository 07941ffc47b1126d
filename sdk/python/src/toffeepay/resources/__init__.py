"""The client's namespaces: sessions, payments, refunds, disputes, webhooks, sandbox."""
