"""Property tests of the money system, in the style of pgledger's: a hypothesis state machine
drives real purchases, payments, completions, refunds (full and partial), disputes, cancellations and
payouts through the domain against real PostgreSQL and Redis (the sandbox gateway), and after every
step checks the invariants below. A second property runs random batches of the same operations
concurrently over real connections.

Invariants (``check_invariants``):
* the ledger balances: every currency sums to zero, kept balances equal their entries, no
  non-negative account is below zero (``ledger.verify``);
* per order: escrow holds captured - refunded until release and nothing after; after release the
  remaining shares add up to captured - refunded; refunds never exceed what was captured; the
  provider is never paid more for an order than was captured for it;
* per provider and currency: payable = its available earnings; in transit = its unsettled payouts;
* refunds owed (``refunds_payable``) = refunds not yet settled by the gateway;
* no payout made while a dispute was open on an order contains that order's money.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import select, update

import workers  # noqa: F401  (the Dramatiq broker the outbox dispatches to)
from domain.money import escrow, ledger, payout, refund
from domain.orders import dispute, refunds
from domain.orders import payment as payment_domain
from domain.orders import service_request as sr
from domain.shared.errors import DomainError
from gateways import sandbox
from models import Dispute, Payment, Payout, ProviderEarning, Refund, ServiceRequest, User
from models.db import dispose_engine, session_scope
from settings import get_settings
from tests.conftest import truncate_all
from tests.support.contracts import accept_order
from tests.support.factories import make_affiliate, make_provider, make_service, make_user

CUSTOMER = sr.CustomerDetails(full_name="Ada Nkem", email="ada@example.cm", phone="+237671234567")


# --- the world and the operations -------------------------------------------------------------------


class World:
    """Users, providers (with payout destinations) and a service sold in XAF and NGN."""

    admin: User
    customer: User
    provider_users: list[User]
    provider_ids: list[int]
    service_id: int
    tier_id: int


async def reset_and_build() -> World:
    async with session_scope() as s:
        await truncate_all(s)
    client = aioredis.from_url(get_settings().redis_url)
    await client.flushdb()
    await client.aclose()
    world = World()
    world.admin = await make_user("ops@example.com", role="admin")
    world.customer = await make_user("ada@example.com")
    world.provider_users, world.provider_ids = [], []
    for i in range(2):
        user = await make_user(f"pro{i}@example.com", role="provider")
        provider = await make_provider(user_id=user.id, display_name=f"Pro {i}")
        world.provider_users.append(user)
        world.provider_ids.append(provider.id)
        async with session_scope() as s:
            await payout.register_destination(
                s, provider.id, kind="mobile_money", currency="XAF", country_code="CM", holder_name=f"Pro {i}",
                phone="+237671234567", operator="mtn",
            )
            await payout.register_destination(
                s, provider.id, kind="bank_account", currency="NGN", country_code="NG", holder_name=f"Pro {i}",
                bank_code="058", account_number="0123456789",
            )
    service, tiers = await make_service(name="Leak repair", tiers=1, prices={"XAF": 10_000, "NGN": 1_234_567})
    world.service_id, world.tier_id = service.id, tiers[0].id
    await make_affiliate("DOUALA-PARTNER", commission_bps=700)
    return world


async def buy_and_pay(world: World, currency: str, guest: bool, affiliate: bool) -> int:
    async with session_scope() as s:
        bought = await sr.purchase_service(
            s, service_id=world.service_id, tier_id=world.tier_id, customer=CUSTOMER if guest else None,
            user=None if guest else world.customer, currency=currency,
            affiliate_code="DOUALA-PARTNER" if affiliate else None,
        )
        request_id, payment_id = bought.service_request.id, bought.payment.id
    # the customer pays on the sandbox's hosted page (the sandbox records it, as a gateway would)
    await sandbox.record_checkout_outcome(sandbox.parse_checkout(bought.checkout_url.rsplit("/", 1)[1]), "paid")
    async with session_scope() as s:
        payment = await s.scalar(select(Payment).where(Payment.id == payment_id).with_for_update())
        result = await payment_domain.apply_payment_status(
            s, payment, "succeeded", amount_minor=payment.amount_minor, currency=payment.currency,
            event_id=f"evt_{payment_id}",
        )
    assert result == "completed"
    if guest:  # guests cannot open disputes: give the order to the customer account for that
        async with session_scope() as s:
            await s.execute(update(ServiceRequest).where(ServiceRequest.id == request_id)
                            .values(customer_user_id=world.customer.id))
    return request_id


async def complete(world: World, request_id: int, by_admin: bool) -> None:
    provider_index = request_id % 2
    async with session_scope() as s:
        await sr.assign_provider(s, request_id, world.provider_ids[provider_index], actor=world.admin)
    await accept_order(request_id)  # both parties accept the contract (tests/orders/test_contracts.py)
    actor = world.admin if by_admin else world.provider_users[provider_index]
    for status in ("in_progress", "completed"):
        async with session_scope() as s:
            await sr.update_status(s, request_id, status, actor=actor)


async def release_due() -> None:
    async with session_scope() as s:
        await s.execute(update(ServiceRequest).where(ServiceRequest.release_due_at.is_not(None))
                        .values(release_due_at=datetime.now(UTC) - timedelta(seconds=1)))
    await escrow.release_due_orders()


async def refund_some(world: World, request_id: int, percent: int) -> None:
    async with session_scope() as s:
        request = await s.get(ServiceRequest, request_id)
        amount = max(1, escrow.refundable(request) * percent // 100)
    async with session_scope() as s:
        await refunds.refund_order(s, request_id, actor_user_id=world.admin.id, amount_minor=amount, reason="goodwill")


async def settle_refunds() -> None:
    async with session_scope() as s:
        ids = (await s.scalars(select(Refund.id).where(Refund.status == "pending"))).all()
    for refund_id in ids:
        await refund.send_refund(refund_id)


async def open_dispute(world: World, request_id: int) -> None:
    async with session_scope() as s:
        await dispute.open_dispute(s, request_id, actor=world.customer, reason="The leak is back")


async def resolve_dispute(world: World, request_id: int, resolution: str, percent: int) -> None:
    async with session_scope() as s:
        found = await s.scalar(select(Dispute).where(Dispute.service_request_id == request_id, Dispute.status == "open"))
        if found is None:
            raise dispute.DisputeNotOpen("none open")
        request = await s.get(ServiceRequest, request_id)
        amount = max(1, escrow.refundable(request) * percent // 100)
    async with session_scope() as s:
        await dispute.resolve_dispute(s, found.id, actor=world.admin, resolution=resolution, refund_minor=amount)


async def cancel(world: World, request_id: int) -> None:
    async with session_scope() as s:
        await sr.update_status(s, request_id, "cancelled", actor=world.admin)


async def pay_out() -> None:
    await payout.run_payouts()
    async with session_scope() as s:
        ids = (await s.scalars(select(Payout.id).where(Payout.status.in_(("pending", "sent"))))).all()
    for payout_id in ids:
        await payout.send_payout(payout_id)


# --- invariants -----------------------------------------------------------------------------------


async def check_invariants() -> None:
    async with session_scope() as s:
        check = await ledger.verify(s)
        assert check.ok, check
        requests = (await s.scalars(select(ServiceRequest))).all()
        earnings = {e.service_request_id: e for e in (await s.scalars(select(ProviderEarning))).all()}
        for r in requests:
            assert 0 <= r.refunded_minor <= r.captured_minor
            held = await ledger.balance(s, ledger.escrow(r.id, r.currency))
            if r.released_at is None:
                assert held == r.captured_minor - r.refunded_minor, r.reference
            else:
                assert held == 0, r.reference
                assert (r.settled_provider_minor + r.settled_platform_minor + r.settled_affiliate_minor
                        == r.captured_minor - r.refunded_minor), r.reference
            earning = earnings.get(r.id)
            if earning is not None:
                assert earning.amount_minor <= earning.released_minor <= r.captured_minor
        available: dict[tuple[int, str], int] = defaultdict(int)
        in_payout: dict[tuple[int, str], int] = defaultdict(int)
        for e in earnings.values():
            if e.status == "available":
                available[(e.provider_id, e.currency)] += e.amount_minor
            elif e.status == "in_payout":
                in_payout[(e.provider_id, e.currency)] += e.amount_minor
        payouts = (await s.scalars(select(Payout))).all()
        unsettled: dict[tuple[int, str], int] = defaultdict(int)
        for p in payouts:
            if p.status in ("pending", "sent"):
                unsettled[(p.provider_id, p.currency)] += p.amount_minor
        keys = set(available) | set(in_payout) | set(unsettled) | {
            (p.provider_id, p.currency) for p in payouts}
        for provider_id, currency in keys:
            assert await ledger.balance(s, ledger.provider_payable(provider_id, currency)) == available[(provider_id, currency)]
            transit = await ledger.balance(s, ledger.payout_in_transit(provider_id, currency))
            assert transit == unsettled[(provider_id, currency)] == in_payout[(provider_id, currency)]
        owed: dict[str, int] = defaultdict(int)
        for rf in (await s.scalars(select(Refund))).all():
            if rf.status != "succeeded":
                owed[rf.currency] += rf.amount_minor
        for currency in ("XAF", "NGN"):
            assert await ledger.balance(s, ledger.refunds_payable(currency)) == owed[currency]
        # a payout created while a dispute was open never carries that order's earning
        for d in (await s.scalars(select(Dispute))).all():
            e = earnings.get(d.service_request_id)
            if e is None or e.payout_id is None:
                continue
            p = next(p for p in payouts if p.id == e.payout_id)
            closed = d.resolved_at or datetime.max.replace(tzinfo=UTC)
            assert not (d.created_at <= p.created_at <= closed), (d.id, p.reference)


EXPECTED = (DomainError,)  # refusals are fine (refund of nothing, dispute twice, cancel a completed order...)


# --- the state machine ----------------------------------------------------------------------------


class MoneyMachine(RuleBasedStateMachine):
    """Random walks over the money operations; ``loop`` is the test's event loop."""

    loop: asyncio.AbstractEventLoop
    orders = Bundle("orders")
    # What the walks did, printed at the end of the test (pytest -s) for the record.
    tally: dict[str, int] = defaultdict(int)

    def run(self, coro):
        return self.loop.run_until_complete(coro)

    def attempt(self, coro) -> None:
        name = coro.__qualname__
        try:
            self.run(coro)
            self.tally[f"{name} done"] += 1
        except EXPECTED as exc:
            self.tally[f"{name} refused ({exc.code})"] += 1

    @initialize()
    def build(self) -> None:
        self.tally["examples"] += 1
        self.world = self.run(reset_and_build())

    @rule(target=orders, currency=st.sampled_from(["XAF", "NGN"]), guest=st.booleans(), affiliate=st.booleans())
    def purchase(self, currency, guest, affiliate):
        self.tally["purchase+payment done"] += 1
        return self.run(buy_and_pay(self.world, currency, guest, affiliate))

    @rule(order=orders, how=st.sampled_from(["admin completes", "provider completes"] * 2 + ["admin cancels"]))
    def finish(self, order, how):
        """The work ends: completed by the admin (escrow released now) or by the provider (after
        the grace period), or, less often, the order is cancelled (refunded per the policy)."""
        if how == "admin cancels":
            self.attempt(cancel(self.world, order))
        else:
            self.attempt(complete(self.world, order, how == "admin completes"))

    @rule(order=orders, percent=st.integers(1, 100))
    def refund(self, order, percent):
        self.attempt(refund_some(self.world, order, percent))

    @rule(order=orders)
    def open_dispute(self, order):
        self.attempt(open_dispute(self.world, order))

    @rule(order=orders, resolution=st.sampled_from(dispute.RESOLUTIONS), percent=st.integers(1, 99))
    def resolve_dispute(self, order, resolution, percent):
        self.attempt(resolve_dispute(self.world, order, resolution, percent))

    @rule()
    def time_passes(self):
        """The scheduler's jobs: grace periods end, the gateway settles refunds, payouts run."""
        self.tally["time passes"] += 1
        self.run(release_due())
        self.run(settle_refunds())
        self.run(pay_out())

    @invariant()
    def money_is_conserved(self):
        if hasattr(self, "world"):
            self.tally["invariant checks"] += 1
            self.run(check_invariants())


STATE_MACHINE_EXAMPLES = 40
STATE_MACHINE_STEPS = 30


def test_any_sequence_of_money_operations_keeps_the_invariants():
    loop = asyncio.new_event_loop()
    MoneyMachine.loop = loop
    try:
        run_state_machine_as_test(
            MoneyMachine,
            settings=settings(max_examples=STATE_MACHINE_EXAMPLES, stateful_step_count=STATE_MACHINE_STEPS,
                              deadline=None, suppress_health_check=list(HealthCheck)),
        )
    finally:
        loop.run_until_complete(dispose_engine())
        loop.close()
    print("\nmoney state machine:", dict(sorted(MoneyMachine.tally.items())))


# --- the same operations, concurrently --------------------------------------------------------------

OPERATION = st.one_of(
    st.tuples(st.just("complete"), st.integers(0, 5), st.booleans()),
    st.tuples(st.just("refund"), st.integers(0, 5), st.integers(1, 100)),
    st.tuples(st.just("dispute"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("resolve"), st.integers(0, 5), st.integers(1, 99)),
    st.tuples(st.just("cancel"), st.integers(0, 5), st.just(0)),
    st.tuples(st.just("payouts"), st.just(0), st.just(0)),
    st.tuples(st.just("release"), st.just(0), st.just(0)),
    st.tuples(st.just("settle"), st.just(0), st.just(0)),
)


@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
@given(batches=st.lists(st.lists(OPERATION, min_size=2, max_size=8), min_size=1, max_size=4))
async def test_money_operations_run_concurrently_keep_the_invariants(batches):
    world = await reset_and_build()
    orders = [await buy_and_pay(world, "XAF" if i % 2 else "NGN", i % 3 == 0, i % 2 == 0) for i in range(6)]

    async def one(op: tuple[str, int, object]) -> None:
        name, index, arg = op
        order = orders[index]
        coro = {
            "complete": lambda: complete(world, order, bool(arg)),
            "refund": lambda: refund_some(world, order, int(arg)),
            "dispute": lambda: open_dispute(world, order),
            "resolve": lambda: resolve_dispute(world, order, dispute.RESOLUTIONS[int(arg) % 3], int(arg)),
            "cancel": lambda: cancel(world, order),
            "payouts": pay_out,
            "release": release_due,
            "settle": settle_refunds,
        }[name]()
        try:
            await coro
        except EXPECTED:
            pass

    for batch in batches:
        await asyncio.gather(*(one(op) for op in batch))
        await check_invariants()
