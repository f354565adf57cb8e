"""Data protection in GraphQL: data export and account erasure of customers (resolvers/operations/privacy.py;
root fields: schema/operations/root.py)."""

from __future__ import annotations

import strawberry

from domain.operations.errors import OperationsErrorCode
from domain.shared.errors import CommonErrorCode
from resolvers.operations import privacy as privacy_resolvers
from schema.shared.common import coded_errors, error_code_enum

AccountDeletionErrorCode = error_code_enum("AccountDeletionErrorCode", [
    CommonErrorCode.INVALID_CREDENTIALS, OperationsErrorCode.OPEN_ORDERS, OperationsErrorCode.NOT_A_CUSTOMER,
    OperationsErrorCode.ACCOUNT_DELETED, CommonErrorCode.NOT_FOUND, CommonErrorCode.INVALID_ID,
    CommonErrorCode.INVALID,
])


@strawberry.type
class AccountDeletionError:
    field: str | None
    code: AccountDeletionErrorCode
    message: str


@strawberry.type(description="What an erasure anonymised (counts of rows).")
class AccountDeletion:
    service_requests: int = strawberry.field(description="Orders (of the account and guest orders with its email).")
    bookings: int
    tickets: int
    messages: int = strawberry.field(description="Chat messages the customer sent, blanked.")
    emails: int = strawberry.field(description="Stored emails to the customer, scrubbed.")
    sessions_ended: int


@strawberry.input
class DeleteMyAccountInput:
    password: str = strawberry.field(description="The account's current password, to confirm.")


@strawberry.input
class DeleteCustomerAccountInput:
    user_id: strawberry.ID = strawberry.field(description="The customer's User id.")


@strawberry.type
class DeleteAccountPayload:
    deletion: AccountDeletion | None
    errors: list[AccountDeletionError]


def deletion_payload(result: privacy_resolvers.DeletionResult) -> DeleteAccountPayload:
    r = result.report
    return DeleteAccountPayload(
        deletion=AccountDeletion(service_requests=r.requests, bookings=r.bookings, tickets=r.tickets,
                                 messages=r.messages, emails=r.emails, sessions_ended=r.sessions) if r else None,
        errors=coded_errors(AccountDeletionErrorCode, AccountDeletionError, result.errors),
    )


EXPORT_DESCRIPTION = (
    "Everything Odim holds about the customer, as one JSON document (format `odim.customer-data/1`): "
    "account, serviceRequests (with statusHistory), bookings, tickets, payments, refunds, disputes, messages, "
    "notifications, emails, emailPreferences, sessions. No password hash, MFA secret or token."
)
