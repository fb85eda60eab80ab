"""Stores: the database (PostgreSQL or embedded SQLite), keys, sessions, rate-limit buckets and caches
(Redis or in-process); one contract per store."""
