"""Root Mutation: one `input` each, a `<Name>Payload` with `errors` each (CONVENTIONS.md)."""

from __future__ import annotations

import strawberry

from domain.money import escrow
from domain.orders.service_request import CustomerDetails
from resolvers.messaging import chat as chat_resolvers
from resolvers.money import payout as payout_resolvers
from resolvers.money import refunds as refund_resolvers
from resolvers.operations import dead_letters as dead_letter_resolvers
from resolvers.operations import reconciliation as reconciliation_resolvers
from resolvers.orders import dispute as dispute_resolvers
from resolvers.orders import service_request as sr_resolvers
from resolvers.providers import provider as provider_resolvers
from schema import booking as bookings
from schema import email as emails_schema
from schema import feed as feeds
from schema.chat import (
    MARK_CONVERSATION_READ,
    ChatMessage,
    SendChatMessageInput,
    SendChatMessagePayload,
    chat_errors,
    mark_conversation_read,
    retry_after,
)
from schema.contract import ContractMutation
from schema.discovery import DiscoveryMutation
from schema.dispute import (
    Dispute,
    OpenDisputeInput,
    OpenDisputePayload,
    ResolveDisputeInput,
    ResolveDisputePayload,
    dispute_errors,
)
from schema.money import (
    FeeQuote,
    Refund,
    RefundServiceRequestInput,
    RefundServiceRequestPayload,
    refund_errors,
)
from schema.onboarding import OnboardingMutation
from schema.operations import (
    DeadLetter,
    DiscardDeadLetterInput,
    DiscardDeadLetterPayload,
    ReconciliationRun,
    ReplayDeadLetterInput,
    ReplayDeadLetterPayload,
    RunReconciliationInput,
    RunReconciliationPayload,
    dead_letter_errors,
    reconciliation_errors,
)
from schema.payout import (
    DisablePayoutDestinationInput,
    DisablePayoutDestinationPayload,
    Payout,
    PayoutDestination,
    RegisterPayoutDestinationInput,
    RegisterPayoutDestinationPayload,
    RequestPayoutInput,
    RequestPayoutPayload,
    RunPayoutsInput,
    RunPayoutsPayload,
    payout_errors,
)
from schema.privacy import PrivacyMutation
from schema.provider import (
    Provider,
    SetAvailabilityInput,
    SetAvailabilityPayload,
    VerifyProviderInput,
    VerifyProviderPayload,
    provider_errors,
)
from schema.review import ReviewMutation
from schema.service_request import (
    AssignProviderInput,
    AssignProviderPayload,
    PurchaseServiceInput,
    PurchaseServicePayload,
    ServiceRequest,
    UpdateServiceRequestStatusInput,
    UpdateServiceRequestStatusPayload,
    purchase_errors,
    request_errors,
)
from schema.user import AccountMutation


async def _provider(info: strawberry.Info, provider) -> Provider | None:
    if provider is None:
        return None
    view = await provider_resolvers.provider_view(info.context, provider.id)
    return Provider.of(view) if view else None


@strawberry.type
class Mutation(AccountMutation, PrivacyMutation, OnboardingMutation, ContractMutation, DiscoveryMutation,
               ReviewMutation):
    @strawberry.mutation(description="Buy one tier of a service, logged in or as a guest; returns the request "
                         "and the checkout URL to pay it.")
    async def purchase_service(self, info: strawberry.Info, input: PurchaseServiceInput) -> PurchaseServicePayload:
        c = input.customer
        r = await sr_resolvers.purchase_service(
            info.context, service_id=input.service_id, tier_id=input.tier_id,
            customer=CustomerDetails(c.full_name, c.email, c.phone, c.requirements) if c else None,
            affiliate_code=input.affiliate_code, idempotency_key=input.idempotency_key, currency=input.currency,
        )
        return PurchaseServicePayload(
            service_request=ServiceRequest.of(r.request) if r.request else None, checkout_url=r.checkout_url,
            guest_access_token=r.guest_access_token, errors=purchase_errors(r.errors),
            fee_breakdown=FeeQuote.of(escrow.order_breakdown(r.request.model)) if r.request else None,
        )

    @strawberry.mutation(description="Post a message in a conversation you take part in.")
    async def send_chat_message(self, info: strawberry.Info, input: SendChatMessageInput) -> SendChatMessagePayload:
        r = await chat_resolvers.send_message(info.context, conversation_id=input.conversation_id, body=input.body)
        return SendChatMessagePayload(message=ChatMessage.of(r.message) if r.message else None, errors=chat_errors(r.errors),
                                      retry_after_seconds=retry_after(r.errors))

    mark_conversation_read = strawberry.mutation(resolver=mark_conversation_read, description=MARK_CONVERSATION_READ)

    @strawberry.mutation(description="Admin (or the assigned provider for IN_PROGRESS/COMPLETED): move a request "
                         "on along the allowed transitions.")
    async def update_service_request_status(
        self, info: strawberry.Info, input: UpdateServiceRequestStatusInput
    ) -> UpdateServiceRequestStatusPayload:
        r = await sr_resolvers.update_status(info.context, request_id=input.id, status=input.status.value, note=input.note)
        return UpdateServiceRequestStatusPayload(
            service_request=ServiceRequest.of(r.request) if r.request else None, errors=request_errors(r.errors)
        )

    @strawberry.mutation(description="Admin: assign a verified provider (moves PENDING_CONTACT to TEAM_ASSIGNED).")
    async def assign_provider(self, info: strawberry.Info, input: AssignProviderInput) -> AssignProviderPayload:
        r = await sr_resolvers.assign_provider(
            info.context, request_id=input.service_request_id, provider_id=input.provider_id
        )
        return AssignProviderPayload(
            service_request=ServiceRequest.of(r.request) if r.request else None, errors=request_errors(r.errors)
        )

    @strawberry.mutation(description="Admin: mark a provider verified so that search finds it.")
    async def verify_provider(self, info: strawberry.Info, input: VerifyProviderInput) -> VerifyProviderPayload:
        r = await provider_resolvers.verify_provider(info.context, provider_id=input.provider_id)
        return VerifyProviderPayload(provider=await _provider(info, r.provider), errors=provider_errors(r.errors))

    @strawberry.mutation(description="Provider: set whether you take work now, and optionally where you are.")
    async def set_availability(self, info: strawberry.Info, input: SetAvailabilityInput) -> SetAvailabilityPayload:
        loc = input.location
        r = await provider_resolvers.set_availability(
            info.context, available=input.available, latitude=loc.latitude if loc else None,
            longitude=loc.longitude if loc else None,
        )
        return SetAvailabilityPayload(provider=await _provider(info, r.provider), errors=provider_errors(r.errors))

    # --- money ------------------------------------------------------------------------------------

    @strawberry.mutation(description="Admin: refund an order in full or in part through its payment gateway "
                         "(the customer is emailed when the gateway confirms).")
    async def refund_service_request(
        self, info: strawberry.Info, input: RefundServiceRequestInput
    ) -> RefundServiceRequestPayload:
        r = await refund_resolvers.refund_service_request(
            info.context, service_request_id=input.service_request_id, amount=input.amount, reason=input.reason,
            idempotency_key=input.idempotency_key,
        )
        return RefundServiceRequestPayload(
            refund=Refund.of(r.refund) if r.refund else None,
            service_request=ServiceRequest.of(r.request) if r.request else None, errors=refund_errors(r.errors),
        )

    @strawberry.mutation(description="The order's customer or an admin opens a dispute: no payout touches the "
                         "order's money until an admin resolves it.")
    async def open_dispute(self, info: strawberry.Info, input: OpenDisputeInput) -> OpenDisputePayload:
        r = await dispute_resolvers.open_dispute(
            info.context, service_request_id=input.service_request_id, reason=input.reason
        )
        return OpenDisputePayload(
            dispute=Dispute.of(r.dispute, r.request.model.currency) if r.dispute and r.request else None,
            service_request=ServiceRequest.of(r.request) if r.request else None, errors=dispute_errors(r.errors),
        )

    @strawberry.mutation(description="Admin: settle an open dispute by releasing the money to the provider, "
                         "refunding in full, or refunding part.")
    async def resolve_dispute(self, info: strawberry.Info, input: ResolveDisputeInput) -> ResolveDisputePayload:
        r = await dispute_resolvers.resolve_dispute(
            info.context, dispute_id=input.dispute_id, resolution=input.resolution.value,
            refund_amount=input.refund_amount, note=input.note,
        )
        return ResolveDisputePayload(
            dispute=Dispute.of(r.dispute, r.request.model.currency) if r.dispute and r.request else None,
            service_request=ServiceRequest.of(r.request) if r.request else None, errors=dispute_errors(r.errors),
        )

    @strawberry.mutation(description="Admin: run a dead letter's job again (idempotent: a replayed or discarded "
                         "one is returned unchanged).")
    async def replay_dead_letter(self, info: strawberry.Info, input: ReplayDeadLetterInput) -> ReplayDeadLetterPayload:
        r = await dead_letter_resolvers.replay_dead_letter(info.context, dead_letter_id=input.id)
        return ReplayDeadLetterPayload(
            dead_letter=DeadLetter.of(r.letter) if r.letter else None, errors=dead_letter_errors(r.errors)
        )

    @strawberry.mutation(description="Admin: mark an open dead letter as needing nothing more.")
    async def discard_dead_letter(
        self, info: strawberry.Info, input: DiscardDeadLetterInput
    ) -> DiscardDeadLetterPayload:
        r = await dead_letter_resolvers.discard_dead_letter(info.context, dead_letter_id=input.id)
        return DiscardDeadLetterPayload(
            dead_letter=DeadLetter.of(r.letter) if r.letter else None, errors=dead_letter_errors(r.errors)
        )

    @strawberry.mutation(description="Admin: reconcile now: ask the gateways about every payment, refund and "
                         "payout still pending, apply their answers, flag mismatches. Returns the run's report.")
    async def run_reconciliation(
        self, info: strawberry.Info, input: RunReconciliationInput
    ) -> RunReconciliationPayload:
        r = await reconciliation_resolvers.run_reconciliation(info.context, older_than_seconds=input.older_than_seconds)
        return RunReconciliationPayload(
            run=ReconciliationRun.of(r.run) if r.run else None, errors=reconciliation_errors(r.errors)
        )

    @strawberry.mutation(description="Admin: run the payout batch now (every provider's payable earnings, held "
                         "ones excluded); returns how many payouts were created.")
    async def run_payouts(self, info: strawberry.Info, input: RunPayoutsInput) -> RunPayoutsPayload:
        made = await payout_resolvers.run_payouts(info.context)
        return RunPayoutsPayload(payouts_created=made, client_mutation_id=input.client_mutation_id, errors=[])

    @strawberry.mutation(description="Provider: add a payout destination (mobile money or bank account).")
    async def register_payout_destination(
        self, info: strawberry.Info, input: RegisterPayoutDestinationInput
    ) -> RegisterPayoutDestinationPayload:
        r = await payout_resolvers.register_destination(
            info.context, kind=input.kind.value, currency=input.currency, country_code=input.country_code,
            holder_name=input.holder_name, phone=input.phone, operator=input.operator, bank_code=input.bank_code,
            account_number=input.account_number, make_default=input.make_default,
        )
        return RegisterPayoutDestinationPayload(
            destination=PayoutDestination.of(r.destination) if r.destination else None, errors=payout_errors(r.errors)
        )

    @strawberry.mutation(description="Provider: stop paying to one of your destinations.")
    async def disable_payout_destination(
        self, info: strawberry.Info, input: DisablePayoutDestinationInput
    ) -> DisablePayoutDestinationPayload:
        r = await payout_resolvers.disable_destination(info.context, destination_id=input.destination_id)
        return DisablePayoutDestinationPayload(
            destination=PayoutDestination.of(r.destination) if r.destination else None, errors=payout_errors(r.errors)
        )

    @strawberry.mutation(description="Provider: pay out your whole available balance in a currency now.")
    async def request_payout(self, info: strawberry.Info, input: RequestPayoutInput) -> RequestPayoutPayload:
        r = await payout_resolvers.request_payout(
            info.context, currency=input.currency, idempotency_key=input.idempotency_key
        )
        return RequestPayoutPayload(payout=Payout.of(r.payout) if r.payout else None, errors=payout_errors(r.errors))

    # --- bookings (issue 4) -----------------------------------------------------------------------

    hold_slot = bookings.mutation(bookings.hold_slot)
    checkout_booking = bookings.mutation(bookings.checkout_booking)
    change_booking_status = bookings.mutation(bookings.change_booking_status)
    book_follow_up = bookings.mutation(bookings.book_follow_up)
    open_booking_dispute = bookings.mutation(bookings.open_booking_dispute)
    review_booking = bookings.mutation(bookings.review_booking)
    take_over_booking = bookings.mutation(bookings.take_over_booking)
    set_weekly_plan = bookings.mutation(bookings.set_weekly_plan)
    set_date_exception = bookings.mutation(bookings.set_date_exception)
    clear_date_exception = bookings.mutation(bookings.clear_date_exception)
    set_booking_rules = bookings.mutation(bookings.set_booking_rules)
    set_service_slot = bookings.mutation(bookings.set_service_slot)
    set_provider_time_zone = bookings.mutation(bookings.set_provider_time_zone)
    create_ticket = bookings.mutation(bookings.create_ticket)
    cancel_ticket = bookings.mutation(bookings.cancel_ticket)
    resolve_escalation = bookings.mutation(bookings.resolve_escalation)
    add_appliance_model = bookings.mutation(bookings.add_appliance_model)

    # --- in-app notifications (issue 5) -----------------------------------------------------------

    mark_notifications_read = feeds.mark_notifications_read_field

    # --- email (issue 5) --------------------------------------------------------------------------

    set_notification_preference = emails_schema.mutation(emails_schema.set_notification_preference)
    set_email_opt_out = emails_schema.mutation(emails_schema.set_email_opt_out)
