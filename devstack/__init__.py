"""Development and test tooling: local services (PostgreSQL+PostGIS, Redis, SMTP sink) and seed data."""
