"""SQLAlchemy models. Importing this package registers every table on ``Base.metadata``."""

from models.base import Base
from models.bookings import (
    ApplianceModel,
    AvailabilityException,
    AvailabilityRule,
    Booking,
    BookingStatusChange,
    Escalation,
    ProviderBookingSettings,
    ProviderService,
    SubstitutionOffer,
    Ticket,
)
from models.catalogue import Service, ServiceTier, TierPrice
from models.identity import AccountToken, AuthSession, RefreshToken, User
from models.messaging.chat import ChatMessage, ChatRead, Conversation
from models.messaging.feed import Notification
from models.messaging.notification import Email, EmailDelivery, EmailSuppression, NotificationPreference
from models.money.affiliate import Affiliate, AffiliateAttribution
from models.money.ledger import LedgerAccount, LedgerEntry, LedgerTransaction
from models.money.payout import Payout, PayoutDestination, PayoutStatusChange, ProviderEarning
from models.orders.contract import Contract, ContractAcceptance
from models.orders.dispute import Dispute
from models.orders.payment import Payment, PaymentStatusChange, Refund, WebhookEvent
from models.orders.service_request import ServiceRequest, ServiceRequestStatusChange
from models.providers.onboarding import ApplicationDocument, ProviderApplication
from models.providers.provider import Provider
from models.reviews import ProviderStrike, Review
from models.shared.audit import AuditEntry
from models.shared.operations import DeadLetter, IdempotencyKey, ReconciliationItem, ReconciliationRun
from models.shared.outbox import OutboxMessage

__all__ = [
    "Affiliate", "AffiliateAttribution", "AuditEntry", "ApplianceModel", "AvailabilityException", "AvailabilityRule", "Base",
    "Booking", "BookingStatusChange", "Escalation", "ProviderBookingSettings", "ProviderService", "SubstitutionOffer",
    "Ticket", "ChatMessage", "ChatRead", "Contract", "ContractAcceptance", "Conversation", "DeadLetter", "Dispute", "Email", "EmailDelivery",
    "EmailSuppression", "NotificationPreference",
    "IdempotencyKey", "LedgerAccount", "LedgerEntry", "LedgerTransaction", "Notification", "OutboxMessage", "Payment",
    "PaymentStatusChange", "Payout", "PayoutDestination", "PayoutStatusChange", "Provider", "ProviderEarning",
    "ReconciliationItem", "ReconciliationRun", "Refund", "Service", "ServiceRequest", "ServiceRequestStatusChange",
    "ServiceTier", "TierPrice", "User", "WebhookEvent", "AccountToken", "AuthSession", "RefreshToken",
    "ApplicationDocument", "ProviderApplication",
    "ProviderStrike", "Review",
]
