"""Personal data encrypted at rest (AES-256-GCM) and blind indexes (keyed HMAC-SHA256) for exact lookups.

Stored form of an encrypted value: ``v1:<key id>:<base64(nonce || ciphertext || tag)>`` with a 96-bit
random nonce (NIST SP 800-38D section 8.2.2) and ``"<table>.<column>"`` as associated data, so a value
copied into another column does not decrypt. Keys come from ``settings.encryption_keys`` (key id ->
base64 of 32 bytes); new values use ``settings.encryption_key_id``; reading uses the key id stored in
the value, so old keys keep working until ``odim keys rotate`` has re-encrypted everything.

The domain reads and writes plain strings: ``EncryptedText`` / ``EncryptedJSON`` are SQLAlchemy
TypeDecorators. A column declared with ``blind_index="email"`` or ``"phone"`` has a sibling
``<column>_bidx`` (hex HMAC-SHA256 of the normalised value under ``settings.blind_index_key``):
``Model.column == value`` and ``Model.column.in_([...])`` compile to comparisons of that sibling, which
``keep_blind_index`` fills on ORM writes and ``blind_index_default`` on Core inserts. A Core UPDATE of
such a column must set the ``_bidx`` column itself (``blind_index(value, kind)``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import String, Text, event
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeDecorator

from settings import Settings, get_settings

VERSION = "v1"
NONCE_BYTES = 12  # 96-bit nonce: the size GCM is specified for (SP 800-38D 8.2)
KEY_BYTES = 32  # AES-256
BIDX_LENGTH = 64  # hex characters of an HMAC-SHA256
BLIND_INDEX_KINDS = ("email", "phone")

# Every encrypted column, as (table, column): what `odim keys rotate` and the migration walk.
ENCRYPTED_COLUMNS: list[tuple[str, str]] = []


class DecryptionError(Exception):
    """A stored value is not in the ``v1:<key id>:<base64>`` form, names a key id missing from
    ``settings.encryption_keys``, or fails authentication (wrong key, wrong column, tampered)."""


class _Keyring:
    def __init__(self, settings: Settings) -> None:
        self.current_id = settings.encryption_key_id
        self.ciphers = {kid: AESGCM(decode_key(key.get_secret_value())) for kid, key in settings.encryption_keys.items()}
        self.bidx_key = settings.blind_index_key.get_secret_value().encode()


_keyring: tuple[Settings, _Keyring] | None = None


def _ring() -> _Keyring:
    """The keys of the current settings object (rebuilt when tests swap the settings)."""
    global _keyring
    settings = get_settings()
    if _keyring is None or _keyring[0] is not settings:
        _keyring = (settings, _Keyring(settings))
    return _keyring[1]


def decode_key(encoded: str) -> bytes:
    """The 32 raw bytes of a base64 key. Raises ``ValueError`` when it is not base64 of 32 bytes."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("an encryption key must be base64 of 32 random bytes") from exc
    if len(raw) != KEY_BYTES:
        raise ValueError(f"an encryption key must be base64 of {KEY_BYTES} bytes, got {len(raw)}")
    return raw


def generate_key() -> str:
    """A new random AES-256 key, base64 (44 characters), from ``os.urandom``."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def encrypt(plain: str, aad: str, *, key_id: str | None = None) -> str:
    """``v1:<key id>:<base64>`` of ``plain`` under ``key_id`` (default: the current key), bound to
    ``aad`` (``"<table>.<column>"``). A fresh random nonce per call: equal inputs never give equal outputs."""
    ring = _ring()
    kid = key_id or ring.current_id
    nonce = os.urandom(NONCE_BYTES)
    sealed = ring.ciphers[kid].encrypt(nonce, plain.encode(), aad.encode())
    return f"{VERSION}:{kid}:{base64.b64encode(nonce + sealed).decode()}"


def key_id_of(stored: str) -> str:
    """The key id named by a stored value. Raises ``DecryptionError`` for a value not in the stored form."""
    parts = stored.split(":", 2)
    if len(parts) != 3 or parts[0] != VERSION:
        raise DecryptionError("not an encrypted value (expected v1:<key id>:<base64>)")
    return parts[1]


def decrypt(stored: str, aad: str) -> str:
    """The plain text of ``stored`` (see ``encrypt``). Raises ``DecryptionError`` (unknown key id,
    malformed, or authentication failed: wrong key, wrong column or tampered)."""
    kid = key_id_of(stored)
    cipher = _ring().ciphers.get(kid)
    if cipher is None:
        raise DecryptionError(f"encryption key {kid!r} is not in settings.encryption_keys")
    try:
        raw = base64.b64decode(stored.split(":", 2)[2], validate=True)
        return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode()).decode()
    except (InvalidTag, binascii.Error, ValueError) as exc:
        raise DecryptionError(f"value of {aad} does not decrypt under key {kid!r}") from exc


FILE_MAGIC = b"odim-file-v1:"


def encrypt_bytes(plain: bytes, aad: str, *, key_id: str | None = None) -> bytes:
    """A file's bytes sealed for storage: ``odim-file-v1:<key id>:`` then nonce || ciphertext || tag
    (AES-256-GCM, the keys of ``encrypt``), bound to ``aad`` (the file's storage key, so a file
    copied under another key does not decrypt). Adds 13 + len(key id) + 1 + 12 + 16 bytes."""
    ring = _ring()
    kid = key_id or ring.current_id
    nonce = os.urandom(NONCE_BYTES)
    return FILE_MAGIC + kid.encode() + b":" + nonce + ring.ciphers[kid].encrypt(nonce, plain, aad.encode())


def is_encrypted_bytes(stored: bytes) -> bool:
    """Whether ``stored`` is in ``encrypt_bytes``'s form (files written before encryption are not)."""
    return stored.startswith(FILE_MAGIC)


def decrypt_bytes(stored: bytes, aad: str) -> bytes:
    """The plain bytes of ``stored`` (see ``encrypt_bytes``). Raises ``DecryptionError`` (not in the
    sealed form, unknown key id, or authentication failed: wrong key, wrong storage key, tampered)."""
    if not is_encrypted_bytes(stored):
        raise DecryptionError("not an encrypted file (expected odim-file-v1:<key id>:...)")
    kid, sep, raw = stored[len(FILE_MAGIC):].partition(b":")
    cipher = _ring().ciphers.get(kid.decode(errors="replace")) if sep else None
    if cipher is None:
        raise DecryptionError(f"file key {kid!r} is not in settings.encryption_keys")
    try:
        return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode())
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError(f"file {aad} does not decrypt under key {kid!r}") from exc


def current_key_id() -> str:
    """``settings.encryption_key_id``: the key new values are written with."""
    return _ring().current_id


_PHONE_NOISE = re.compile(r"[\s().\-]")


def normalise_for_index(value: str, kind: str) -> str:
    """The form a value is indexed in: emails stripped and lower-cased; phones without spaces,
    dots, dashes and brackets (the domain stores E.164 already, ``domain.user.normalise_phone``)."""
    if kind == "email":
        return value.strip().lower()
    if kind == "phone":
        return _PHONE_NOISE.sub("", value)
    raise ValueError(f"unknown blind index kind {kind!r}")


def blind_index(value: str | None, kind: str) -> str | None:
    """Hex HMAC-SHA256 (64 characters) of the normalised ``value`` under ``settings.blind_index_key``,
    prefixed by ``kind`` inside the MAC so an email and a phone never share an index value. None for None."""
    if value is None:
        return None
    msg = f"{kind}:{normalise_for_index(value, kind)}".encode()
    return hmac.new(_ring().bidx_key, msg, hashlib.sha256).hexdigest()


class EncryptedText(TypeDecorator):
    """A text column stored encrypted (``Text`` in SQL). ``aad`` is ``"<table>.<column>"``;
    ``blind_index`` (``"email"`` | ``"phone"`` | None) names the kind of the ``<column>_bidx`` sibling
    that ``==``, ``!=`` and ``in_`` compare instead (any other SQL comparison of the ciphertext is meaningless)."""

    impl = Text
    cache_ok = True

    def __init__(self, aad: str, blind_index: str | None = None) -> None:
        super().__init__()
        if blind_index is not None and blind_index not in BLIND_INDEX_KINDS:
            raise ValueError(f"blind_index must be one of {BLIND_INDEX_KINDS}")
        self.aad = aad
        self.blind_index = blind_index
        pair = tuple(aad.split(".", 1))
        if pair not in ENCRYPTED_COLUMNS:
            ENCRYPTED_COLUMNS.append(pair)  # type: ignore[arg-type]

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else encrypt(str(value), self.aad)

    def process_result_value(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else decrypt(value, self.aad)

    class comparator_factory(TypeDecorator.Comparator):  # SQLAlchemy's hook name
        def operate(self, op, *other, **kwargs):
            kind = self.type.blind_index
            if op in (operators.eq, operators.ne, operators.in_op, operators.not_in_op):
                value = other[0] if other else None
                if value is None and op in (operators.eq, operators.ne):
                    return super().operate(op, *other, **kwargs)  # IS [NOT] NULL
                if isinstance(value, ClauseElement):
                    # Column against column: SQLAlchemy's own identity checks (the ORM compares
                    # columns with == when it resolves them); never a comparison of plain values.
                    return super().operate(op, *other, **kwargs)
                if kind is None:
                    raise TypeError(f"{self.type.aad} is encrypted and has no blind index: it cannot be compared in SQL")
                sibling = self.expr.table.c[f"{self.expr.key}_bidx"]
                if op in (operators.in_op, operators.not_in_op):
                    return op(sibling, [blind_index(v, kind) for v in value], **kwargs)
                if not isinstance(value, str):
                    raise TypeError(f"{self.type.aad} is encrypted: compare it with a plain string only")
                return op(sibling, blind_index(value, kind), **kwargs)
            return super().operate(op, *other, **kwargs)


class EncryptedJSON(TypeDecorator):
    """A JSON document stored encrypted (``Text`` in SQL; JSON operators are not available on it)."""

    impl = Text
    cache_ok = True

    def __init__(self, aad: str) -> None:
        super().__init__()
        self.aad = aad
        pair = tuple(aad.split(".", 1))
        if pair not in ENCRYPTED_COLUMNS:
            ENCRYPTED_COLUMNS.append(pair)  # type: ignore[arg-type]

    def process_bind_param(self, value: Any, dialect: Any) -> str | None:
        return None if value is None else encrypt(json.dumps(value, separators=(",", ":"), sort_keys=True), self.aad)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        return None if value is None else json.loads(decrypt(value, self.aad))


def blind_index_default(source: str, kind: str) -> Callable:
    """Column default for ``<source>_bidx``: the blind index of the ``source`` parameter of the
    INSERT (Core inserts that do not give the index themselves)."""

    def default(context) -> str | None:
        return blind_index(context.get_current_parameters().get(source), kind)

    return default


def blind_index_column(source: str, kind: str, *, index: bool = True):
    """``mapped_column`` of ``<source>_bidx``: ``String(64)``, filled on insert, with a plain index
    ``ix_<table>_<source>_bidx`` unless ``index`` is False (a model that needs a unique index declares it)."""
    from sqlalchemy.orm import mapped_column

    return mapped_column(String(BIDX_LENGTH), default=blind_index_default(source, kind), index=index)


def keep_blind_index(attribute, kind: str) -> None:
    """Keep ``<attribute>_bidx`` equal to the blind index of ``attribute`` whenever the ORM sets it
    (construction included)."""
    target_key = f"{attribute.key}_bidx"

    @event.listens_for(attribute, "set", retval=False)
    def _set(target, value, _old, _initiator) -> None:
        setattr(target, target_key, blind_index(value, kind))
