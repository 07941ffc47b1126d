"""The client's namespaces: sessions, payments, disputes, webhooks, sandbox."""
