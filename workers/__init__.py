"""Dramatiq broker and actors. ``dramatiq workers`` imports this package to find every actor."""

import workers.broker  # noqa: F401  (sets the global broker before actors are declared)
from workers import booking, notification, payment, payout, review  # noqa: F401
