"""Use cases: one function each, run inside a unit of work that commits state and events together."""
