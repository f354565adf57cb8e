"""Streamed CSV export of the admin request table: GET /admin/service-requests.csv and
`odim export requests` (domain/operations/exports.py)."""

from __future__ import annotations

import asyncio
import csv
import io
import subprocess
import sys

from sqlalchemy import update

from domain.operations import exports
from domain.orders.service_request import RequestFilter
from models import ServiceRequest
from models.db import session_scope
from settings import get_settings
from tests.shared.test_audit import ROOT, asgi_get, rows
from tests.support.factories import make_user, token_for
from tests.support.orders import domain_purchase


async def four_orders(shop) -> list[ServiceRequest]:
    """Four orders: two completed (one with a formula-like affiliate code), two awaiting payment."""
    made = [await domain_purchase(shop) for _ in range(4)]
    async with session_scope() as s:
        await s.execute(update(ServiceRequest).where(ServiceRequest.id.in_([made[0].id, made[2].id]))
                        .values(status="completed"))
        await s.execute(update(ServiceRequest).where(ServiceRequest.id == made[2].id)
                        .values(affiliate_code="=HYPERLINK(\"x\")"))
    return made


async def test_an_admin_streams_the_filtered_table_in_batches_with_formulas_defused(shop, monkeypatch):
    # given four orders, an admin, and batches of one row
    made = await four_orders(shop)
    monkeypatch.setattr(get_settings(), "audit_export_batch_rows", 1)
    token = await token_for(await make_user("ops@odim.local", role="admin"))
    # when the admin exports the completed ones
    status, headers, chunks = await asgi_get("/admin/service-requests.csv", "status=COMPLETED", token)
    # then the response streams: the header, one chunk per row (a server-side cursor), the closing body
    assert (status, headers["content-type"], "content-length" in headers) == (200, "text/csv; charset=utf-8", False)
    assert [chunk.count(b"\n") for chunk in chunks] == [1, 1, 1, 0]
    table = list(csv.reader(io.StringIO(b"".join(chunks).decode())))
    assert table[0] == list(exports.REQUEST_CSV_COLUMNS)
    assert [(r[0], r[3], r[12]) for r in table[1:]] == [
        (made[0].reference, "completed", ""), (made[2].reference, "completed", "'=HYPERLINK(\"x\")")]
    # and the export is audited with its filter
    [audited] = await rows(action="admin.exportServiceRequests")
    assert (audited.actor_role, audited.details) == ("admin", {"filter": {"status": "completed"}})


async def test_strangers_are_refused_and_a_bad_filter_is_a_400(shop):
    await four_orders(shop)
    customer = await token_for(await make_user("ada@example.cm"))
    admin = await token_for(await make_user("ops@odim.local", role="admin"))
    assert (await asgi_get("/admin/service-requests.csv", "", None))[0] == 401
    assert (await asgi_get("/admin/service-requests.csv", "", customer))[0] == 403
    assert (await asgi_get("/admin/service-requests.csv", "status=LOST", admin))[0] == 400
    assert (await asgi_get("/admin/service-requests.csv", "from=yesterday", admin))[0] == 400
    assert [r.details["code"] for r in await rows(action="authz.denied")] == ["UNAUTHENTICATED", "FORBIDDEN"]
    assert await rows(action="admin.exportServiceRequests") == []


async def test_the_domain_export_reads_batch_by_batch(shop):
    # given 5 orders
    for _ in range(5):
        await domain_purchase(shop)
    # when exported in batches of 2
    batches: list[int] = []
    chunks = [c async for c in exports.service_requests_csv(RequestFilter(), batch_rows=2, on_rows=batches.append)]
    # then the cursor delivered 2 + 2 + 1 rows, each batch written as it came
    assert batches == [2, 2, 1] and len(chunks) == 4
    async with session_scope() as s:
        assert await exports.count_service_requests(s, RequestFilter(status="completed")) == 0


async def test_the_cli_exports_the_same_csv_as_the_api(shop, tmp_path):
    await four_orders(shop)
    token = await token_for(await make_user("ops@odim.local", role="admin"))
    out = tmp_path / "requests.csv"
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "cli", "export", "requests", "--out", str(out), "--status", "completed"],
        cwd=ROOT, capture_output=True, text=True,
    )
    status, _, chunks = await asgi_get("/admin/service-requests.csv", "status=COMPLETED", token)
    assert done.returncode == 0, done.stderr
    assert "2 row(s)" in done.stdout
    assert status == 200 and out.read_bytes() == b"".join(chunks)
