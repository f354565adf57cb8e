"""Bookings in GraphQL (domain/bookings/), by concern: the object types and enums (``types``: Booking,
Ticket, the bookable slot), free slots and a provider's availability (``availability``), a booking's
life from hold to review (``lifecycle``), tickets and their slot suggestions (``tickets``),
substitution offers (``substitution``) and escalations (``escalations``). The context's root fields
are in ``root`` (``Query``, ``Mutation``, ``Subscription``), combined with the other contexts' in
schema/__init__.py.

Instants are ``DateTime`` (UTC offsets accepted on input, UTC on output); local times are ISO 8601
strings with the offset of the zone named next to them; times of day are ``"HH:MM"`` strings.

What every context uses (Money, points, page info, coded payload errors, the live helpers, the Relay
node field) is schema/shared/; the schema/ top level holds no types, only the machinery around the
schema (extensions, audit, security, text_guard, observability, http, fanout).
"""

from schema.bookings.root import Mutation, Query, Subscription

__all__ = ["Mutation", "Query", "Subscription"]
