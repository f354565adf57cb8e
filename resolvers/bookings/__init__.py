"""Booking resolvers, by concern: slot search and a provider's own availability (``availability``),
a booking's life from hold to review (``lifecycle``), tickets and their slot suggestions
(``tickets``), substitution offers (``substitution``) and escalations (``escalations``);
domain/bookings/.

Thin on purpose: authorise the caller, decode global ids and local times, call ``domain/``, map
``DomainError`` to payload errors (mutations) or typed top-level errors (queries, ``bad_input``).
Writes run in their own ``session_scope`` transaction (``resolvers.errors.write``: rolled back on
any error, nothing written) and relay the outbox after commit; reads use the request's session and
DataLoaders.

What every context uses (the request context, error mapping, ids, page sizes, DataLoaders, rate
limits, live streams, audit binding) is at the resolvers/ top level.
"""
