"""Root Mutation: one `input` each, a `<Name>Payload` with `errors` each (CONVENTIONS.md)."""

from __future__ import annotations

import strawberry

from domain.service_request import CustomerDetails
from resolvers import chat as chat_resolvers
from resolvers import provider as provider_resolvers
from resolvers import service_request as sr_resolvers
from resolvers import user as user_resolvers
from schema.chat import ChatMessage, SendChatMessageInput, SendChatMessagePayload, chat_errors
from schema.provider import (
    Provider,
    SetAvailabilityInput,
    SetAvailabilityPayload,
    VerifyProviderInput,
    VerifyProviderPayload,
    provider_errors,
)
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
from schema.user import LoginInput, LoginPayload, RegisterInput, RegisterPayload, User, account_errors


async def _provider(info: strawberry.Info, provider) -> Provider | None:
    if provider is None:
        return None
    view = await provider_resolvers.provider_view(info.context, provider.id)
    return Provider.of(view) if view else None


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a customer account; returns an access token.")
    async def register(self, info: strawberry.Info, input: RegisterInput) -> RegisterPayload:
        r = await user_resolvers.register(
            info.context, email=input.email, password=input.password, full_name=input.full_name, phone=input.phone
        )
        return RegisterPayload(token=r.token, user=User.of(r.user) if r.user else None, errors=account_errors(r.errors))

    @strawberry.mutation(description="Exchange email and password for an access token.")
    async def login(self, info: strawberry.Info, input: LoginInput) -> LoginPayload:
        r = await user_resolvers.login(info.context, email=input.email, password=input.password)
        return LoginPayload(token=r.token, user=User.of(r.user) if r.user else None, errors=account_errors(r.errors))

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
        )

    @strawberry.mutation(description="Post a message in a conversation you take part in.")
    async def send_chat_message(self, info: strawberry.Info, input: SendChatMessageInput) -> SendChatMessagePayload:
        r = await chat_resolvers.send_message(info.context, conversation_id=input.conversation_id, body=input.body)
        return SendChatMessagePayload(message=ChatMessage.of(r.message) if r.message else None, errors=chat_errors(r.errors))

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
