"""Persistence: SQLAlchemy Core tables, engines, the unit of work and migrations."""
