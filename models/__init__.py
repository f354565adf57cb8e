"""SQLAlchemy models. Importing this package registers every table on ``Base.metadata``."""

from models.affiliate import Affiliate, AffiliateAttribution
from models.audit import AuditEntry
from models.base import Base
from models.booking import (
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
from models.chat import ChatMessage, ChatRead, Conversation
from models.contract import Contract, ContractAcceptance
from models.dispute import Dispute
from models.feed import Notification
from models.ledger import LedgerAccount, LedgerEntry, LedgerTransaction
from models.notification import Email, EmailDelivery, EmailSuppression, NotificationPreference
from models.onboarding import ApplicationDocument, ProviderApplication
from models.operations import DeadLetter, IdempotencyKey, ReconciliationItem, ReconciliationRun
from models.outbox import OutboxMessage
from models.payment import Payment, PaymentStatusChange, Refund, WebhookEvent
from models.payout import Payout, PayoutDestination, PayoutStatusChange, ProviderEarning
from models.provider import Provider
from models.review import ProviderStrike, Review
from models.service_request import ServiceRequest, ServiceRequestStatusChange
from models.user import AccountToken, AuthSession, RefreshToken, User

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
