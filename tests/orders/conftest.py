"""Order tests: purchase, the request state machine, tracking, contracts, payment webhooks and the
money of orders over the API (refunds, disputes, release)."""
