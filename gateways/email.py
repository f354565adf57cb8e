"""Email delivery over SMTP (aiosmtplib): any relay in production, the local sink in development."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol

import aiosmtplib

from settings import get_settings


class Mailer(Protocol):
    async def send(self, *, to: str, subject: str, body: str) -> None: ...


class SmtpMailer:
    """Sends plain-text UTF-8 mail from settings.mail_from through settings.smtp_host:smtp_port.
    Raises ``aiosmtplib.SMTPException`` / ``OSError`` when the relay refuses or is unreachable."""

    async def send(self, *, to: str, subject: str, body: str) -> None:
        settings = get_settings()
        message = EmailMessage()
        message["From"] = settings.mail_from
        message["To"] = to
        message["Subject"] = subject
        message["Message-ID"] = make_msgid(domain="odim.local")
        message.set_content(body)
        await aiosmtplib.send(
            message,
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            start_tls=settings.smtp_starttls,
            timeout=15,
        )
