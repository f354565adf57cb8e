"""Cross-cutting tests of the whole system: the authorisation matrix, fuzzing, faults and crashes,
the end-to-end journey, abuse limits, HTTP hardening, WebSocket limits, the schema and settings."""
