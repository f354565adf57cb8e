"""Root Query."""

from __future__ import annotations

import strawberry
from strawberry import relay

from resolvers import catalogue as catalogue_resolvers
from resolvers import identity as user_resolvers
from resolvers import loaders
from resolvers.money import fees as fee_resolvers
from resolvers.money import ledger as ledger_resolvers
from resolvers.money import payout as payout_resolvers
from resolvers.operations import dead_letters as dead_letter_resolvers
from resolvers.operations import reconciliation as reconciliation_resolvers
from resolvers.orders import dispute as dispute_resolvers
from resolvers.orders import service_request as sr_resolvers
from resolvers.providers import provider as provider_resolvers
from schema import audit as audits
from schema import booking as bookings
from schema import chat as chats
from schema import email as emails_schema
from schema import feed as feeds
from schema.catalogue import Service
from schema.common import GeoPointInput, page_info
from schema.contract import ContractQuery
from schema.discovery import DiscoveryQuery
from schema.dispute import DisputeConnection, DisputeStatus, dispute_connection
from schema.money import AffiliateTotals, FeeQuoteInput, FeeQuoteResult, LedgerTrialBalance, fee_quote_result
from schema.node import node_field
from schema.onboarding import OnboardingQuery
from schema.operations import (
    DeadLetterConnection,
    DeadLetterStatus,
    FlaggedPayment,
    ReconciliationRun,
    dead_letter_connection,
)
from schema.payout import EarningsSummary, PayoutConnection, PayoutDestination, payout_connection
from schema.polling import PollingQuery
from schema.privacy import PrivacyQuery
from schema.provider import NearbyProviderConnection, nearby_connection
from schema.reports import ReportsQuery
from schema.review import ReviewQuery
from schema.service_request import (
    ServiceRequest,
    ServiceRequestConnection,
    ServiceRequestEdge,
    ServiceRequestFilter,
    ServiceRequestOrder,
    SortDirection,
)
from schema.user import User


@strawberry.type
class Query(PollingQuery, PrivacyQuery, OnboardingQuery, ContractQuery, DiscoveryQuery, ReviewQuery, ReportsQuery):
    node: relay.Node | None = node_field  # typed INVALID_ID for malformed ids (schema/node.py)

    @strawberry.field(description="Verified, available providers within `radiusKm` (0 < r <= 100) of `near`, "
                      "nearest first; `first` at most 100 (default 20).")
    async def providers_nearby(
        self, info: strawberry.Info, near: GeoPointInput, radius_km: float, category: str | None = None,
        first: int | None = 20, after: str | None = None,
    ) -> NearbyProviderConnection:
        hits, has_next = await provider_resolvers.providers_nearby(
            info.context, latitude=near.latitude, longitude=near.longitude, radius_km=radius_km,
            category=category, first=first, after=after,
        )
        return nearby_connection(hits, has_next, after is not None)

    @strawberry.field(description="The catalogue: active services with tiers, prices and features.")
    async def services(self, info: strawberry.Info, category: str | None = None) -> list[Service]:
        return [Service.of(s) for s in await catalogue_resolvers.services(info.context, category=category)]

    @strawberry.field(description="Track a request by reference. Personal data only for its owner, provider, "
                      "admins, or with the signed `accessToken` a guest received.")
    async def service_request(
        self, info: strawberry.Info, reference: str, access_token: str | None = None
    ) -> ServiceRequest | None:
        view = await sr_resolvers.service_request(
            info.context, reference=sr_resolvers.require_reference(reference), access_token=access_token
        )
        return ServiceRequest.of(view) if view else None

    @strawberry.field(description="Admins: all requests; customers: their own; providers: assigned to them. Newest "
                      "first unless `orderBy` says otherwise (created, updated, amount or status; keyset pages).")
    async def service_requests(
        self, info: strawberry.Info, filter: ServiceRequestFilter | None = None, first: int | None = 20,
        after: str | None = None, order_by: ServiceRequestOrder | None = None,
    ) -> ServiceRequestConnection:
        f = filter or ServiceRequestFilter()
        o = order_by or ServiceRequestOrder()
        page = await sr_resolvers.service_requests(
            info.context, service_id=f.service_id, status=f.status.value if f.status else None,
            created_from=f.created_from, created_to=f.created_to, assigned_provider_id=f.assigned_provider_id,
            first=first, after=after, sort=o.field.value, descending=o.direction == SortDirection.DESC,
        )
        edges = [ServiceRequestEdge(cursor=c, node=ServiceRequest.of(v)) for v, c in page.items]
        return ServiceRequestConnection(
            edges=edges,
            page_info=page_info(edges, has_next=page.has_next_page, has_previous=after is not None),
            total_count=page.total_count,
        )

    @strawberry.field(description="The logged-in account, or null.")
    async def me(self, info: strawberry.Info) -> User | None:
        user = await user_resolvers.me(info.context)
        return User.of(user) if user else None

    # --- money ------------------------------------------------------------------------------------

    @strawberry.field(description="Fee preview before paying: what buying this tier costs now. Anonymous callers "
                      "are quoted as guests (with the guest checkout fee), logged-in callers without it. Bad "
                      "input comes back as typed `errors` (purchaseService's codes), never as a top-level error.")
    async def fee_quote(self, info: strawberry.Info, input: FeeQuoteInput) -> FeeQuoteResult:
        r = await fee_resolvers.fee_quote(
            info.context, service_id=input.service_id, tier_id=input.tier_id, currency=input.currency,
            affiliate_code=input.affiliate_code,
        )
        return fee_quote_result(r)

    @strawberry.field(description="Provider: earnings per currency (available, held by disputes, in payout, paid out).")
    async def my_earnings(self, info: strawberry.Info) -> list[EarningsSummary]:
        return [EarningsSummary.of(e) for e in await payout_resolvers.my_earnings(info.context)]

    @strawberry.field(description="Provider: your payouts, newest first; `first` at most 100 (default 20).")
    async def my_payouts(
        self, info: strawberry.Info, first: int | None = 20, after: str | None = None
    ) -> PayoutConnection:
        page = await payout_resolvers.my_payouts(info.context, first=first, after=after)
        return payout_connection(page, after is not None)

    @strawberry.field(description="Provider: your enabled payout destinations, oldest first (numbers masked).")
    async def my_payout_destinations(self, info: strawberry.Info) -> list[PayoutDestination]:
        return [PayoutDestination.of(d) for d in await payout_resolvers.my_destinations(info.context)]

    @strawberry.field(description="Admin: every provider's payouts, newest first; `first` at most 100 (default 20).")
    async def payouts(self, info: strawberry.Info, first: int | None = 20, after: str | None = None) -> PayoutConnection:
        page = await payout_resolvers.all_payouts(info.context, first=first, after=after)
        return payout_connection(page, after is not None)

    @strawberry.field(description="Admin: disputes newest first, optionally of one status; `first` at most 100.")
    async def disputes(
        self, info: strawberry.Info, status: DisputeStatus | None = None, first: int | None = 20,
        after: str | None = None,
    ) -> DisputeConnection:
        rows, has_next = await dispute_resolvers.disputes(
            info.context, status=status.value if status else None, first=first, after=after
        )
        return await dispute_connection(info, rows, has_next, after is not None)

    @strawberry.field(description="Admin: jobs whose retries ran out, newest first; `first` at most 100.")
    async def dead_letters(
        self, info: strawberry.Info, status: DeadLetterStatus | None = None, first: int | None = 20,
        after: str | None = None,
    ) -> DeadLetterConnection:
        rows, has_next = await dead_letter_resolvers.dead_letters(
            info.context, status=status.value if status else None, first=first, after=after
        )
        return dead_letter_connection(rows, has_next, after is not None)

    @strawberry.field(description="Admin: the latest reconciliation runs with their items, newest first.")
    async def reconciliation_runs(self, info: strawberry.Info, first: int | None = 10) -> list[ReconciliationRun]:
        return [ReconciliationRun.of(r) for r in await reconciliation_resolvers.reconciliation_runs(info.context, first=first)]

    @strawberry.field(description="Admin: payments held for review because the gateway reported another amount "
                      "or currency (never captured meanwhile).")
    async def flagged_payments(self, info: strawberry.Info) -> list[FlaggedPayment]:
        payments = await reconciliation_resolvers.flagged_payments(info.context)
        requests = await loaders.service_requests(info.context).load_many([p.service_request_id for p in payments])
        return [FlaggedPayment.of(p, r.reference if r else None) for p, r in zip(payments, requests, strict=True)]

    @strawberry.field(description="Admin: ledger balances per account kind and currency, and whether the ledger "
                      "balances (zero-sum per currency, kept balances equal to their entries).")
    async def ledger_trial_balance(self, info: strawberry.Info) -> LedgerTrialBalance:
        return LedgerTrialBalance.of(await ledger_resolvers.trial_balance(info.context))

    @strawberry.field(description="What an affiliate code earned, per currency: admins and the affiliate's own "
                      "account only.")
    async def affiliate_dashboard(self, info: strawberry.Info, code: str) -> list[AffiliateTotals]:
        return [AffiliateTotals.of(t) for t in await ledger_resolvers.affiliate_dashboard(info.context, code=code)]

    # --- bookings (issue 4) -----------------------------------------------------------------------

    available_slots = bookings.field(bookings.available_slots)
    providers_available = bookings.field(bookings.providers_available)
    booking = bookings.field(bookings.booking)
    my_bookings = bookings.field(bookings.my_bookings)
    my_availability = bookings.field(bookings.my_availability)
    ticket = bookings.field(bookings.ticket)
    my_tickets = bookings.field(bookings.my_tickets)
    ticket_slot_suggestions = bookings.field(bookings.ticket_slot_suggestions)
    my_substitution_offers = bookings.field(bookings.my_substitution_offers)
    escalations = bookings.field(bookings.escalations)
    booking_state_machine = bookings.field(bookings.booking_state_machine)

    # --- chat (issue 5) ---------------------------------------------------------------------------

    my_conversations = strawberry.field(resolver=chats.my_conversations, description=chats.MY_CONVERSATIONS)
    chat_messages_since = strawberry.field(resolver=chats.chat_messages_since, description=chats.CHAT_MESSAGES_SINCE)

    # --- in-app notifications (issue 5) -----------------------------------------------------------

    notifications = feeds.notifications_field
    unread_notification_count = feeds.unread_notification_count_field
    notifications_since = feeds.notifications_since_field

    # --- email (issue 5) --------------------------------------------------------------------------

    my_notification_preferences = emails_schema.field(emails_schema.my_notification_preferences)
    emails = emails_schema.field(emails_schema.emails)

    # --- audit log (issue 6) ----------------------------------------------------------------------

    audit_log = audits.audit_log_field
