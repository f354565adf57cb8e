"""Bookings: slot holds, the booking state machine, its effects and timers, tickets, substitution.
Importing the package registers the ``booking`` order kind and the visits' review flow
(domain/bookings/hooks.py)."""

from domain.bookings import hooks  # noqa: F401  (registers the booking order kind and visit reviews)
