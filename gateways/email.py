"""Email delivery over SMTP (aiosmtplib): any relay in production, the local sink in development.

Every mail is ``multipart/alternative`` (a ``text/plain`` part, then a ``text/html`` part when
there is HTML), UTF-8, with a ``Message-ID`` we generate so the delivery log can name it. Extra
headers (``List-Unsubscribe`` and ``List-Unsubscribe-Post`` of RFC 8058) are passed by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from typing import Protocol

import aiosmtplib

from settings import get_settings


@dataclass(frozen=True)
class OutgoingEmail:
    """One message to send: ``to`` a single address; ``html`` empty for a text-only mail;
    ``headers`` extra header name -> value (no line breaks)."""

    to: str
    subject: str
    text: str
    html: str = ""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SmtpReceipt:
    """What the relay said when it accepted a message: the ``Message-ID`` header we sent
    (``<...@domain>``) and the relay's final reply, e.g. ``"250 OK"``."""

    message_id: str
    response: str


class MailDeliveryError(Exception):
    """The relay refused the message or could not be reached. ``smtp_code`` is the SMTP reply code
    when the relay answered (``421``, ``550`` ...), None for a network failure (refused
    connection, timeout); ``smtp_response`` is ``"<code> <text>"`` when it answered;
    ``permanent`` is True for a 5xx reply (RFC 5321 section 4.2.1: do not repeat as is)."""

    def __init__(self, message: str, *, smtp_code: int | None = None, smtp_response: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.smtp_code = smtp_code
        self.smtp_response = smtp_response
        self.permanent = smtp_code is not None and 500 <= smtp_code < 600


class Mailer(Protocol):
    async def send(self, email: OutgoingEmail) -> SmtpReceipt:
        """Hand ``email`` to the relay. Raises ``MailDeliveryError``."""
        ...


def build_message(email: OutgoingEmail, *, sender: str, message_id: str) -> EmailMessage:
    """The MIME message for ``email``: text part, then the HTML alternative when ``html`` is set."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = email.to
    message["Subject"] = email.subject
    message["Message-ID"] = message_id
    for name, value in email.headers.items():
        message[name] = value
    message.set_content(email.text)
    if email.html:
        message.add_alternative(email.html, subtype="html")
    return message


class SmtpMailer:
    """Sends from settings.mail_from through settings.smtp_host:smtp_port (STARTTLS and login when
    configured), one connection per message, timeout settings.email_smtp_timeout_seconds.
    Returns an ``SmtpReceipt``; raises ``MailDeliveryError`` when the relay refuses or is unreachable."""

    async def send(self, email: OutgoingEmail) -> SmtpReceipt:
        settings = get_settings()
        domain = parseaddr(settings.mail_from)[1].rpartition("@")[2] or "odim.local"
        message_id = make_msgid(domain=domain)
        message = build_message(email, sender=settings.mail_from, message_id=message_id)
        try:
            _, response = await aiosmtplib.send(
                message,
                hostname=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
                start_tls=settings.smtp_starttls,
                timeout=settings.email_smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0] if exc.recipients else None
            code = first.code if first else None
            raise MailDeliveryError(
                f"recipient refused: {first.message if first else exc}", smtp_code=code,
                smtp_response=f"{code} {first.message}" if first else None,
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise MailDeliveryError(
                f"{type(exc).__name__}: {exc.code} {exc.message}", smtp_code=exc.code,
                smtp_response=f"{exc.code} {exc.message}",
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:  # refused connection, timeout, disconnect
            raise MailDeliveryError(f"{type(exc).__name__}: {exc}") from exc
        # A successful DATA reply is always 250 (RFC 5321 section 4.3.2); aiosmtplib returns its text.
        return SmtpReceipt(message_id=message_id, response=f"250 {response}".strip())
