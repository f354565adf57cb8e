"""Contract resolvers: reading a contract (its parties, admins, a guest with its order's
signed link; NOT_FOUND/null for everyone else), accepting it, the contract fields of orders, visits
and disputes (DataLoaders: one statement per kind and page), and the PDF download route.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from strawberry.dataloader import DataLoader

from domain.orders import contract as contract_domain
from domain.shared.errors import DomainError, NotFound
from models import Contract, ContractAcceptance
from models.db import session_scope
from resolvers.audit import denial_code, record_denial
from resolvers.context import Context, bearer_token, unauthenticated
from resolvers.errors import PayloadError, bad_input, to_payload_error
from resolvers.ids import decode_id, encode_id


@dataclass
class ContractView:
    """A contract version with its acceptances (customer first); ``admin``: the caller is an admin
    (who alone sees the acceptances' IP addresses and user agents)."""

    model: Contract
    acceptances: list[ContractAcceptance]
    admin: bool


def pdf_path(contract_id: int) -> str:
    """Where a party or an admin downloads contract ``contract_id`` as a PDF (``download_pdf``)."""
    return f"/contracts/{encode_id('Contract', contract_id)}.pdf"


# --- loaders ----------------------------------------------------------------------------------------


def _loader(ctx: Context, name: str, fetch: Callable[[Any, list[int]], Any]) -> DataLoader:
    """A per-request loader over ``fetch(session, ids) -> {id: value}`` (one statement per batch)."""
    loader = ctx.loaders.get(name)
    if loader is None:
        async def batch(ids: list[int]) -> list[Any]:
            async with ctx.db() as session:
                found = await fetch(session, ids)
            return [found.get(i) for i in ids]

        loader = DataLoader(load_fn=batch)
        ctx.loaders[name] = loader
    return loader


def _current_by_request(ctx: Context) -> DataLoader:
    return _loader(ctx, "contract.current_by_request",
                   lambda s, ids: contract_domain.current_contracts(s, service_request_ids=ids))


def _current_by_booking(ctx: Context) -> DataLoader:
    return _loader(ctx, "contract.current_by_booking",
                   lambda s, ids: contract_domain.current_contracts(s, booking_ids=ids))


def _accepted_by_order(ctx: Context) -> DataLoader:
    return _loader(ctx, "contract.accepted_by_order", contract_domain.accepted_contracts_for_orders)


def _acceptances(ctx: Context) -> DataLoader:
    return _loader(ctx, "contract.acceptances", contract_domain.acceptances_of)


async def _view(ctx: Context, found: Contract | None) -> ContractView | None:
    if found is None:
        return None
    viewer = await ctx.viewer()
    acceptances = await _acceptances(ctx).load(found.id) or []
    return ContractView(found, acceptances, admin=viewer is not None and viewer.role == "admin")


async def of_request(ctx: Context, request_id: int) -> ContractView | None:
    """The current contract of an order whose private view the caller already holds (its parent
    field authorised it): loaders, so a page of orders costs 2 statements in all."""
    return await _view(ctx, await _current_by_request(ctx).load(request_id))


async def of_booking(ctx: Context, booking_id: int) -> ContractView | None:
    """The current contract of a visit the caller may see (the Booking object authorised it)."""
    return await _view(ctx, await _current_by_booking(ctx).load(booking_id))


async def accepted_of_order(ctx: Context, order_id: int) -> ContractView | None:
    """Admins only (null for everyone else): the contract a dispute on order ``order_id`` is settled
    on (``contract.accepted_contract``)."""
    viewer = await ctx.viewer()
    if viewer is None or viewer.role != "admin":
        return None
    return await _view(ctx, await _accepted_by_order(ctx).load(order_id))


# --- reading by id ----------------------------------------------------------------------------------


async def contract(ctx: Context, *, contract_id: str, access_token: str | None) -> ContractView | None:
    """Contract ``contract_id`` for its parties, admins and (a guest's order) the holder of the
    order's signed ``access_token``; null for everyone else (as for an unknown id)."""
    try:
        ident = decode_id(contract_id, "Contract", field="id")
    except DomainError as exc:
        raise bad_input(exc) from exc
    return (await contract_nodes(ctx, [ident], access_token=access_token))[0]


async def contract_nodes(ctx: Context, ids: list[int], *, access_token: str | None = None) -> list[ContractView | None]:
    """Contracts by id, each only for callers ``contract.can_read`` allows (others: None)."""
    viewer = await ctx.viewer()
    out: list[ContractView | None] = []
    for ident in ids:
        async with ctx.db() as session:
            try:
                found = await contract_domain.get_readable(session, ident, viewer, access_token)
            except NotFound:
                found = None
        out.append(await _view(ctx, found))
    return out


# --- accepting --------------------------------------------------------------------------------------


@dataclass
class AcceptResult:
    contract: ContractView | None
    errors: list[PayloadError]


async def accept_contract(ctx: Context, *, contract_id: str, sha256: str, access_token: str | None) -> AcceptResult:
    """The customer or the provider of the contract's order or visit accepts the version it read
    (``sha256``); a guest customer passes its order's signed ``access_token`` instead of logging in.
    Anonymous without a token: UNAUTHENTICATED; admins: FORBIDDEN; others: NOT_FOUND. The IP comes
    from the bound request (audit metadata), the user agent from the User-Agent header."""
    user = await ctx.viewer()
    if user is None and not access_token:
        raise unauthenticated()
    request = getattr(ctx, "request", None)
    headers = getattr(request, "headers", None)
    user_agent = headers.get("user-agent") if headers is not None else None
    try:
        ident = decode_id(contract_id, "Contract", field="contractId")
        async with session_scope() as session:
            accepted, _ = await contract_domain.accept(
                session, ident, user=user, sha256=sha256, guest_token=access_token, user_agent=user_agent,
            )
            acceptances = (await contract_domain.acceptances_of(session, [accepted.id]))[accepted.id]
    except DomainError as exc:
        return AcceptResult(None, [to_payload_error(exc)])
    return AcceptResult(ContractView(accepted, acceptances, admin=False), [])


# --- PDF --------------------------------------------------------------------------------------------


async def download_pdf(request: Request) -> Response:
    """``GET /contracts/{id}.pdf`` with ``Authorization: Bearer <token>`` of a party or an admin (a
    guest: ``?accessToken=<its order's signed token>``): the contract as ``application/pdf`` (body,
    SHA-256 and acceptances), never cached. 401 for an invalid or expired token or none at all
    (unless a guest token is given), 404 for everyone else and for unknown ids (others cannot tell a
    contract exists)."""
    ctx = Context(request=request)
    ctx.authenticate(bearer_token(request.headers.get("authorization")))
    guest_token = request.query_params.get("accessToken")
    try:
        viewer = await ctx.viewer()
        if viewer is None and not guest_token:
            raise unauthenticated()
        ident = decode_id(request.path_params["contract_id"], "Contract", field="id")
        async with ctx.db() as session:
            found = await contract_domain.get_readable(session, ident, viewer, guest_token)
            acceptances = (await contract_domain.acceptances_of(session, [found.id]))[found.id]
    except GraphQLError as error:
        code = denial_code(error) or "UNAUTHENTICATED"
        await record_denial(ctx, code=code, operation="GET /contracts/{id}.pdf", path=None, transport="http")
        return JSONResponse({"error": error.message, "code": code}, status_code=401 if code == "UNAUTHENTICATED" else 403)
    except DomainError:
        return JSONResponse({"error": "No such contract", "code": "NOT_FOUND"}, status_code=404)
    finally:
        await ctx.close()
    data = await asyncio.to_thread(contract_domain.render_pdf, found, acceptances)
    return Response(data, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="odim-contract-{found.id}-v{found.version}.pdf"',
        "Cache-Control": "no-store", "X-Content-Sha256": found.sha256,
    })
