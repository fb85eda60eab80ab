"""Stores: the database (PostgreSQL or embedded SQLite), keys, sessions; one contract per store."""
