"""Review tests: blind reviews, publication and rating aggregates."""
