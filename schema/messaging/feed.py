"""In-app notifications in GraphQL: the Notification node, its connection, and the input, payload and
error codes of `markNotificationsRead`. The root fields (the feed `notifications`,
`unreadNotificationCount`, `notificationsSince` for polling, `markNotificationsRead` and the live
`notificationAdded(after)`, built with ``Notification.from_payload``) are in schema/messaging/root.py."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from enum import Enum

import strawberry
from strawberry import relay

from domain.shared.errors import CommonErrorCode
from models import Notification as NotificationModel
from resolvers.ids import encode_id
from resolvers.messaging import feed as feed_resolvers
from schema.shared.common import coded_errors, error_code_enum


@strawberry.enum(description="What a notification is about.")
class NotificationKind(Enum):
    SERVICE_REQUEST_STATUS = "service_request_status"
    BOOKING_STATUS = "booking_status"
    CHAT_MESSAGE = "chat_message"
    PAYOUT = "payout"
    DISPUTE = "dispute"
    ESCALATION = "escalation"


@strawberry.type(description="An entry of your in-app notification feed. Ids increase in the order notifications "
                 "were made: the newest id you have seen is your cursor for `notificationsSince` and "
                 "`notificationAdded(after)`.")
class Notification(relay.Node):
    id: relay.NodeID[int]
    kind: NotificationKind
    title: str = strawberry.field(description="Plain text; render it as text, never as markup.")
    body: str = strawberry.field(description="Plain text; render it as text, never as markup.")
    subject: strawberry.ID | None = strawberry.field(
        description="Global id of the related object (a ServiceRequest, Booking, Payout, Dispute, Escalation or "
        "Conversation): open it with `node(id:)` or the type's own query. Null when there is none."
    )
    subject_type: str | None = strawberry.field(description="The type name of `subject`, for routing in apps.")
    created_at: datetime
    read_at: datetime | None = strawberry.field(description="When you marked it read; null while unread.")

    @classmethod
    def of(cls, n: NotificationModel) -> "Notification":
        return cls(
            id=n.id, kind=NotificationKind(n.kind), title=n.title, body=n.body,
            subject=strawberry.ID(encode_id(n.subject_type, n.subject_id)) if n.subject_type and n.subject_id else None,
            subject_type=n.subject_type, created_at=n.created_at, read_at=n.read_at,
        )

    @classmethod
    def from_payload(cls, p: dict) -> "Notification":
        """From a stream payload (domain/messaging/feed.py: published events and ``notifications_since``)."""
        subject_type, subject_id = p.get("subjectType"), p.get("subjectId")
        return cls(
            id=int(p["id"]), kind=NotificationKind(p["kind"]), title=p["title"], body=p["body"],
            subject=strawberry.ID(encode_id(subject_type, int(subject_id))) if subject_type and subject_id else None,
            subject_type=subject_type, created_at=datetime.fromisoformat(p["createdAt"]),
            read_at=datetime.fromisoformat(p["readAt"]) if p.get("readAt") else None,
        )

    @classmethod
    async def resolve_nodes(cls, *, info: strawberry.Info, node_ids: Iterable[str], required: bool = False):
        found = await feed_resolvers.notification_nodes(info.context, [int(i) for i in node_ids])
        return [cls.of(n) if n else None for n in found]


@strawberry.type
class NotificationEdge:
    cursor: str
    node: Notification


@strawberry.type
class NotificationConnection:
    edges: list[NotificationEdge]
    page_info: relay.PageInfo


NotificationErrorCode = error_code_enum("NotificationErrorCode", [
    CommonErrorCode.REQUIRED, CommonErrorCode.TOO_MANY, CommonErrorCode.INVALID_ID, CommonErrorCode.INVALID,
])


@strawberry.type
class NotificationError:
    field: str | None
    code: NotificationErrorCode
    message: str


@strawberry.input
class MarkNotificationsReadInput:
    ids: list[strawberry.ID] | None = strawberry.field(
        default=None, description="Notification ids to mark read (at most 100). Ids that are not yours are ignored."
    )
    up_to: strawberry.ID | None = strawberry.field(
        default=None, description="Also mark read every one of your notifications up to this one (inclusive)."
    )


@strawberry.type
class MarkNotificationsReadPayload:
    marked_count: int = strawberry.field(description="How many unread notifications of yours were marked read.")
    unread_count: int = strawberry.field(description="Your unread notifications afterwards.")
    errors: list[NotificationError]


def notification_errors(errors) -> list[NotificationError]:
    return coded_errors(NotificationErrorCode, NotificationError, errors)
