"""Encryption at rest benchmark: what AES-256-GCM costs per personal value, and how fast
``odim keys rotate`` re-encrypts.

    uv run python bench/encryption.py                    # against the settings' database (ODIM_* env)
    uv run python bench/encryption.py --rows 20000 --batch-size 500

1. CPU, in this process (``timeit``, best of 5): ``models.crypto.encrypt`` and ``decrypt`` of a
   typical email, ``blind_index`` of it, and the full TypeDecorator round trip
   (``process_bind_param`` + ``process_result_value``) against a plain ``str`` pass-through.
2. Database: ``--rows`` accounts are inserted into ``users`` (encrypted email and phone), then
   ``SELECT id, email, phone`` of all of them is timed through the ORM (decrypting) and as raw text
   (no decryption): the ratio is the read overhead of decryption on a realistic fetch.
3. Rotation: the settings switch to a fresh key and ``domain.privacy.rotate_keys`` re-encrypts
   every value; prints values/s. The rows made are deleted at the end (``bench-enc-*`` emails).

Figures only, never asserted (docs/conventions.md). Run it against a development or test stack, never
production: it writes and deletes accounts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
import timeit

from sqlalchemy import delete, insert, select, text

from domain.operations import privacy
from models import User
from models.crypto import EncryptedText, blind_index, decrypt, encrypt, generate_key
from models.db import dispose_engine, session_scope
from settings import get_settings

EMAIL = "awa.ngono.1987@example.cm"


def per_op_us(fn, number: int = 20_000) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def cpu_figures() -> dict[str, float]:
    stored = encrypt(EMAIL, "users.email")
    col = EncryptedText("users.email", blind_index="email")
    plain = {
        "encrypt_us": per_op_us(lambda: encrypt(EMAIL, "users.email")),
        "decrypt_us": per_op_us(lambda: decrypt(stored, "users.email")),
        "blind_index_us": per_op_us(lambda: blind_index(EMAIL, "email")),
        "type_round_trip_us": per_op_us(
            lambda: col.process_result_value(col.process_bind_param(EMAIL, None), None)),
        "plain_str_round_trip_us": per_op_us(lambda: str(str(EMAIL))),
    }
    return plain


async def db_figures(rows: int, batch_size: int) -> dict[str, float]:
    async with session_scope() as s:
        await s.execute(delete(User).where(User.email.in_([f"bench-enc-{i}@example.cm" for i in range(rows)])))
    started = time.perf_counter()
    async with session_scope() as s:
        for start in range(0, rows, 1000):
            await s.execute(insert(User), [
                {"email": f"bench-enc-{i}@example.cm", "phone": f"+2376{i:08d}", "password_hash": "x",
                 "full_name": f"Bench {i}", "role": "customer"} for i in range(start, min(rows, start + 1000))
            ])
    insert_s = time.perf_counter() - started
    reads: dict[str, list[float]] = {"orm": [], "raw": []}
    for _ in range(5):
        async with session_scope() as s:
            t = time.perf_counter()
            got = (await s.execute(select(User.id, User.email, User.phone).where(User.full_name.like("Bench %")))).all()
            reads["orm"].append(time.perf_counter() - t)
            t = time.perf_counter()
            raw = (await s.execute(text("SELECT id, email, phone FROM users WHERE full_name LIKE 'Bench %'"))).all()
            reads["raw"].append(time.perf_counter() - t)
        assert len(got) == len(raw) == rows
    # rotation to a fresh key
    settings = get_settings()
    keys = {k: v.get_secret_value() for k, v in settings.encryption_keys.items()}
    keys["bench"] = generate_key()
    os.environ["ODIM_ENCRYPTION_KEYS"] = json.dumps(keys)
    os.environ["ODIM_ENCRYPTION_KEY_ID"] = "bench"
    get_settings.cache_clear()
    report = await privacy.rotate_keys(batch_size=batch_size)
    orm, raw = min(reads["orm"]), min(reads["raw"])
    return {
        "rows": rows, "insert_rows_per_s": rows / insert_s,
        "read_orm_ms": orm * 1e3, "read_raw_ms": raw * 1e3, "read_ratio": orm / raw,
        "read_decrypt_us_per_value": (orm - raw) / (2 * rows) * 1e6,
        "rotated_values": report.rotated, "rotation_s": report.seconds,
        "rotation_values_per_s": report.rotated / report.seconds if report.seconds else 0.0,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    original = {k: os.environ.get(k) for k in ("ODIM_ENCRYPTION_KEYS", "ODIM_ENCRYPTION_KEY_ID")}
    first = get_settings()
    home_keys = {k: v.get_secret_value() for k, v in first.encryption_keys.items()}
    home_id = first.encryption_key_id
    cpu = cpu_figures()
    try:
        db = await db_figures(args.rows, args.batch_size)
        async with session_scope() as s:
            await s.execute(text("DELETE FROM users WHERE full_name LIKE 'Bench %'"))
        # Whatever else the database held was re-encrypted under the throw-away bench key: back home.
        os.environ["ODIM_ENCRYPTION_KEYS"] = json.dumps(
            {**home_keys, "bench": get_settings().encryption_keys["bench"].get_secret_value()})
        os.environ["ODIM_ENCRYPTION_KEY_ID"] = home_id
        get_settings.cache_clear()
        await privacy.rotate_keys(batch_size=args.batch_size)
    finally:
        for k, v in original.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        get_settings.cache_clear()
        await dispose_engine()
    print(f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}")
    print("CPU per value (best of 5):")
    for name, value in cpu.items():
        print(f"  {name:28s} {value:8.2f} us")
    print(f"  type round trip / plain     {cpu['type_round_trip_us'] / cpu['plain_str_round_trip_us']:8.1f} x")
    print(f"database ({db['rows']} accounts, email + phone encrypted):")
    print(f"  insert                      {db['insert_rows_per_s']:10,.0f} rows/s")
    print(f"  SELECT through the ORM      {db['read_orm_ms']:10.1f} ms (decrypting {2 * db['rows']} values)")
    print(f"  SELECT raw ciphertext       {db['read_raw_ms']:10.1f} ms")
    print(f"  ratio ORM / raw             {db['read_ratio']:10.2f} x "
          f"({db['read_decrypt_us_per_value']:.2f} us per decrypted value)")
    print(f"rotation: {db['rotated_values']} values in {db['rotation_s']:.2f} s = "
          f"{db['rotation_values_per_s']:,.0f} values/s")
    print(json.dumps({"cpu": cpu, "db": db}, default=float))


if __name__ == "__main__":
    asyncio.run(main())
