"""Orders in tests: a shop to buy from (``shop`` fixture), purchases through the API and the domain,
payment by the sandbox gateway, and readers of an order's rows, history, events and emails."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from domain.orders import locks
from domain.orders import payment as payment_domain
from domain.orders import service_request as sr
from gateways.sandbox import SandboxGateway
from models import (
    Conversation,
    Email,
    OutboxMessage,
    Payment,
    PaymentStatusChange,
    ServiceRequest,
    ServiceRequestStatusChange,
    User,
)
from models.db import session_scope
from resolvers.ids import encode_id
from tests.support.factories import make_service
from tests.support.graphql_client import gql

REFERENCE_RE = re.compile(r"^ODM-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$")
GUEST = {"fullName": "Bob Guest", "email": "bob@example.com", "phone": "+237 6 99 12 34 56"}

PURCHASE = """
mutation Purchase($input: PurchaseServiceInput!) {
  purchaseService(input: $input) {
    serviceRequest {
      id reference status statusLabel
      amount { amountMinor currency }
      customer { fullName email phone requirements }
    }
    checkoutUrl
    guestAccessToken
    errors { field code message }
  }
}
"""
TRACK = """
query Track($reference: String!, $accessToken: String) {
  serviceRequest(reference: $reference, accessToken: $accessToken) {
    reference status statusLabel nextStep
    timeline { status statusLabel note }
    customer { fullName email phone requirements }
  }
}
"""
UPDATE_STATUS = """
mutation Update($input: UpdateServiceRequestStatusInput!) {
  updateServiceRequestStatus(input: $input) {
    serviceRequest { status statusLabel }
    errors { field code message }
  }
}
"""
ASSIGN = """
mutation Assign($input: AssignProviderInput!) {
  assignProvider(input: $input) {
    serviceRequest { status assignedProvider { displayName } }
    errors { field code message }
  }
}
"""
LIST = """
query List($filter: ServiceRequestFilter, $first: Int, $after: String) {
  serviceRequests(filter: $filter, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id reference } }
  }
}
"""
LIST_DEEP = """
query List($first: Int) {
  serviceRequests(first: $first) {
    totalCount
    edges { node {
      reference
      timeline { status at }
      service { name }
      tierName
      assignedProvider { displayName }
      conversation { id }
    } }
  }
}
"""
NODE = """
query Node($id: ID!) {
  node(id: $id) { ... on ServiceRequest { reference customer { email } } }
}
"""


# --- helpers ---------------------------------------------------------------------------------------


@dataclass
class Shop:
    service_id: int
    tier_ids: list[int]
    other_service_id: int
    other_tier_id: int

    def input(self, tier: int = 0, **extra: object) -> dict:
        return {"serviceId": encode_id("Service", self.service_id),
                "tierId": encode_id("ServiceTier", self.tier_ids[tier]), **extra}


@pytest.fixture
async def shop() -> Shop:
    """A two-tier service sold in XAF and NGN, and a one-tier service."""
    service, tiers = await make_service(name="Leak repair", tiers=2, prices={"XAF": 10000, "NGN": 1000000})
    other, other_tiers = await make_service(name="Gate painting", category="painting", tiers=1, prices={"XAF": 25000})
    return Shop(service.id, [t.id for t in tiers], other.id, other_tiers[0].id)


def db_id(global_id: str) -> int:
    return int(base64.b64decode(global_id).decode().split(":")[1])


async def row_counts() -> dict[str, int]:
    """Rows a purchase or a status change writes."""
    tables = {"service_requests": ServiceRequest, "status_history": ServiceRequestStatusChange,
              "payments": Payment, "payment_history": PaymentStatusChange, "conversations": Conversation,
              "outbox": OutboxMessage, "emails": Email}
    async with session_scope() as s:
        return {name: await s.scalar(select(func.count()).select_from(model)) for name, model in tables.items()}


NOTHING = {"service_requests": 0, "status_history": 0, "payments": 0, "payment_history": 0, "conversations": 0,
           "outbox": 0, "emails": 0}


async def purchase(client, shop: Shop, *, token: str | None = None, tier: int = 0, **extra: object) -> dict:
    body = await gql(client, PURCHASE, {"input": shop.input(tier, **extra)}, token=token)
    payload = body["data"]["purchaseService"]
    assert payload["errors"] == [], payload["errors"]
    return payload


async def pay(request_id: int) -> None:
    """The gateway confirmed the payment: the request moves to pending_contact (the real path)."""
    async with session_scope() as s:
        payment = await s.scalar(select(Payment).where(Payment.service_request_id == request_id).with_for_update())
        request = await locks.lock_request(s, request_id)
        await payment_domain.confirm_payment(s, payment, request, f"evt_test_{request_id}")


async def domain_purchase(shop: Shop, user: User | None = None, *, tier: int = 0) -> ServiceRequest:
    """A purchase written through the domain (faster than HTTP for building lists)."""
    async with session_scope() as s:
        made = await sr.purchase_service(
            s, SandboxGateway(), service_id=shop.service_id, tier_id=shop.tier_ids[tier], user=user,
            customer=None if user else sr.CustomerDetails(GUEST["fullName"], GUEST["email"], GUEST["phone"]),
        )
    return made.service_request


async def history(request_id: int) -> list[tuple[str | None, str, str]]:
    async with session_scope() as s:
        rows = (await s.scalars(select(ServiceRequestStatusChange)
                                .where(ServiceRequestStatusChange.service_request_id == request_id)
                                .order_by(ServiceRequestStatusChange.id))).all()
    return [(r.from_status, r.to_status, r.actor_type) for r in rows]


async def status_of(request_id: int) -> str:
    async with session_scope() as s:
        return await s.scalar(select(ServiceRequest.status).where(ServiceRequest.id == request_id))


async def events_on(reference: str) -> list[str]:
    """Statuses of the live events recorded in the outbox for this request."""
    async with session_scope() as s:
        rows = (await s.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "event", OutboxMessage.target == f"odim:service_request:{reference}",
        ).order_by(OutboxMessage.id))).all()
    return [r.payload["status"] for r in rows]


async def status_emails(to: str) -> list[str]:
    async with session_scope() as s:
        rows = (await s.scalars(select(Email).where(Email.kind == "status_changed", Email.to_address == to)
                                .order_by(Email.id))).all()
    return [r.subject for r in rows]
