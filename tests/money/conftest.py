"""Money tests: the ledger, payouts, the money property tests and the payment proofs. Every test
here starts with the gateway registry reset (``clean_money_tables``, autouse)."""

from __future__ import annotations

from tests.support.money import clean_money_tables  # noqa: F401  (autouse for every money test)
