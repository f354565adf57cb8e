"""SQLAlchemy models. Importing this package registers every table on ``Base.metadata``."""

from models.affiliate import Affiliate, AffiliateAttribution
from models.base import Base
from models.catalogue import Service, ServiceTier, TierPrice
from models.chat import ChatMessage, Conversation
from models.notification import Email
from models.outbox import OutboxMessage
from models.payment import Payment, PaymentStatusChange, WebhookEvent
from models.provider import Provider
from models.service_request import ServiceRequest, ServiceRequestStatusChange
from models.user import User

__all__ = [
    "Affiliate", "AffiliateAttribution", "Base", "ChatMessage", "Conversation", "Email", "OutboxMessage",
    "Payment", "PaymentStatusChange", "Provider", "Service", "ServiceRequest", "ServiceRequestStatusChange",
    "ServiceTier", "TierPrice", "User", "WebhookEvent",
]
