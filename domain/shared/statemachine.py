"""The one state-machine helper of every status in Odim (orders, bookings, payments, refunds, payouts).

A machine is data: a table of rules ``(from, to) -> Rule(actors, why)`` over the values of a status
``StrEnum``. ``Machine.check`` answers whether an actor may make a move (raising the machine's typed
``InvalidTransition`` when not); ``Machine.move`` checks, writes the history row the caller builds,
and sets the new status, all in the caller's transaction, so a state never changes without its
history row. Guards that need the database and effects stay in each context's ``transition``
function, which calls ``move`` first.

The rules are documented where they are: ``Machine.table()`` renders them, and
docs/state-machines.md is generated from the machines (a test fails when it is stale). They are never
copied by hand into docstrings.

Actors are ``customer``, ``provider``, ``admin`` and ``system`` (webhooks, timers, reconciliation).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from domain.shared.errors import CommonErrorCode, DomainError

ACTORS = frozenset({"customer", "provider", "admin", "system"})
EVERYONE = ACTORS


class InvalidTransition(DomainError):
    """The move is not in the machine's table for this actor (or a guard refused it)."""

    code = CommonErrorCode.INVALID_TRANSITION
    field = "status"


@dataclass(frozen=True)
class Rule:
    """One row of a transition table: who may make the move (``actors``) and what it means (``why``)."""

    actors: frozenset[str]
    why: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.actors) - ACTORS
        if unknown:
            raise ValueError(f"unknown actors {sorted(unknown)}")


def rule(*actors: str, why: str = "") -> Rule:
    """``Rule(frozenset(actors), why)``, for readable tables."""
    return Rule(frozenset(actors), why)


class Machine:
    """A state machine over ``statuses`` (a ``StrEnum``) with ``rules``. ``initial`` is the status rows
    are created in. ``error`` is the ``DomainError`` subclass raised for a refused move (its code must
    be ``INVALID_TRANSITION``; contexts subclass it to set the field). Tables are checked when the
    machine is built: every status named is a member, every non-initial member is reachable."""

    def __init__(
        self,
        name: str,
        statuses: type[StrEnum],
        rules: Mapping[tuple[str, str], Rule],
        *,
        initial: str | Iterable[str],
        error: type[DomainError] = InvalidTransition,
    ) -> None:
        self.name = name
        self.statuses = statuses
        self.rules: dict[tuple[str, str], Rule] = {(str(a), str(b)): r for (a, b), r in rules.items()}
        self.initial = frozenset({str(initial)} if isinstance(initial, str) else {str(i) for i in initial})
        self.error = error
        members = {str(m) for m in statuses}
        named = {s for pair in self.rules for s in pair} | self.initial
        if named - members:
            raise ValueError(f"{name}: statuses not in {statuses.__name__}: {sorted(named - members)}")
        unreachable = members - {b for _, b in self.rules} - self.initial
        if unreachable:
            raise ValueError(f"{name}: statuses nothing leads to: {sorted(unreachable)}")

    def rule(self, from_status: str | None, to_status: str) -> Rule | None:
        """The rule of the move, or None when the table has none."""
        return self.rules.get((str(from_status), str(to_status)))

    def allowed(self, from_status: str | None, to_status: str, actor: str) -> bool:
        """True when ``actor`` may move a row from ``from_status`` to ``to_status``."""
        found = self.rule(from_status, to_status)
        return found is not None and actor in found.actors

    def targets(self, from_status: str, actor: str | None = None) -> list[str]:
        """The statuses a row in ``from_status`` may move to (by ``actor`` when given), in table order."""
        return [b for (a, b), r in self.rules.items() if a == str(from_status) and (actor is None or actor in r.actors)]

    def terminal(self) -> frozenset[str]:
        """Statuses no rule leaves."""
        return frozenset(str(m) for m in self.statuses) - {a for a, _ in self.rules}

    def check(self, from_status: str | None, to_status: str, actor: str) -> Rule:
        """The rule of the move. Raises ``self.error`` (``INVALID_TRANSITION``) naming the move when
        ``to_status`` is not a status, the table has no such move, or ``actor`` may not make it."""
        if str(to_status) not in {str(m) for m in self.statuses}:
            raise self.error(f"Unknown {self.name} status {to_status!r}")
        found = self.rule(from_status, to_status)
        if found is None or actor not in found.actors:
            article = "An" if actor[:1] in "aeiou" else "A"
            raise self.error(f"{article} {actor} cannot move a {self.name} from {from_status} to {to_status}")
        return found

    def move(
        self,
        row: Any,
        to_status: str,
        *,
        actor: str,
        history: Callable[[str | None, str], Any] | None,
        session: Any = None,
        attribute: str = "status",
    ) -> Any:
        """Check the move of ``row`` (its ``attribute``, ``status`` by default) to ``to_status`` by
        ``actor``, add the history row ``history(from, to)`` returns to ``session`` (when both are
        given), then set the new status. Returns the history row (None without one). Raises
        ``self.error``; on refusal nothing changed."""
        from_status = getattr(row, attribute)
        self.check(from_status, to_status, actor)
        change = history(from_status, str(to_status)) if history is not None else None
        if change is not None and session is not None:
            session.add(change)
        setattr(row, attribute, str(to_status))
        return change

    def table(self) -> list[tuple[str, str, list[str], str]]:
        """``[(from, to, sorted actors, why)]`` in table order (for docs and tests)."""
        order = ["customer", "provider", "admin", "system"]
        return [(a, b, [x for x in order if x in r.actors], r.why) for (a, b), r in self.rules.items()]

    def markdown(self) -> str:
        """The table as a Markdown section (docs/state-machines.md is generated from these)."""
        lines = [f"## {self.name}", "", f"Created in: {', '.join(f'`{s}`' for s in sorted(self.initial))}.",
                 f"Terminal: {', '.join(f'`{s}`' for s in sorted(self.terminal())) or 'none'}.", "",
                 "| from | to | who | what it means |", "|---|---|---|---|"]
        for a, b, actors, why in self.table():
            lines.append(f"| `{a}` | `{b}` | {', '.join(actors)} | {why} |")
        return "\n".join(lines) + "\n"
