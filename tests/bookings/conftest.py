"""Booking tests: holds and the exclusion constraint, the booking state machine, races, crashes,
the field (tickets, substitution, no-shows) and bookings over the API."""
