"""The shared context's tests: the transactional outbox, the live bus, the audit log, error codes
and encryption at rest."""
