"""The Connect API: thin adapters from wire messages to services."""
