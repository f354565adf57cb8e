"""Provider tests: nearby search, availability, ranked discovery, onboarding, standing (strikes) and
the document storage."""
