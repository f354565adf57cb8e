"""One source for every error code: the code StrEnums of domain/<context>/errors.py and
domain/shared/errors.py. Domain errors carry their members, the GraphQL error-code enums are generated
from them (schema/shared/common.py ``error_code_enum``), and a payload enum that lacks a code a mutation
produced fails the test that reached it (``UnlistedErrorCode``)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from enum import Enum, StrEnum
from pathlib import Path

import pytest

import domain
import schema
from domain.shared.errors import CommonErrorCode, DomainError
from schema.shared.common import UnlistedErrorCode, coded_errors

ROOT = Path(__file__).resolve().parents[2]
CONTEXTS = ["shared", "messaging", "identity", "providers", "catalogue", "money", "reviews", "orders", "bookings",
            "operations"]


def code_enums() -> dict[str, type[StrEnum]]:
    out = {}
    for ctx in CONTEXTS:
        module = importlib.import_module(f"domain.{ctx}.errors")
        for name, obj in vars(module).items():
            if isinstance(obj, type) and issubclass(obj, StrEnum) and obj.__module__ == module.__name__:
                out[name] = obj
    return out


def all_modules(package) -> list:
    return [importlib.import_module(m.name) for m in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]


def test_each_code_lives_in_exactly_one_enum():
    # given every code enum of every context
    owners: dict[str, list[str]] = {}
    for name, enum in code_enums().items():
        for member in enum:
            owners.setdefault(member.value, []).append(name)
            assert member.value == member.name  # clients switch on the value: it is the SCREAMING_SNAKE name
    # then no code is declared twice
    assert {code: names for code, names in owners.items() if len(names) > 1} == {}
    assert len(code_enums()) == len(CONTEXTS)


def test_no_error_code_is_a_string_literal_in_domain_or_resolvers():
    # when the code is scanned for `code = "X"` / `code="X"`
    literals = []
    for path in [*ROOT.joinpath("domain").rglob("*.py"), *ROOT.joinpath("resolvers").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Assign):
                targets = [(t.id, node.value) for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                targets = [(node.target.id, node.value)]
            elif isinstance(node, ast.keyword) and node.arg == "code":
                targets = [("code", node.value)]
            for name, value in targets:
                if name == "code" and isinstance(value, ast.Constant) and isinstance(value.value, str) \
                        and value.value.isupper():
                    literals.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    # then there are none: every code is a member of a code enum
    assert literals == []


def test_every_domain_error_class_carries_a_code_of_an_enum():
    # given every module of the domain imported
    all_modules(domain)
    known = {member.value for enum in code_enums().values() for member in enum}

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    # then each DomainError subclass's code is a known code, carried as an enum member
    wrong = [f"{c.__module__}.{c.__name__}: {c.code!r}" for c in subclasses(DomainError) if c.__module__.startswith("domain.")
             if not isinstance(c.code, StrEnum) or c.code.value not in known]
    assert wrong == []


def test_every_graphql_error_enum_is_generated_from_known_codes_and_has_invalid():
    # given every GraphQL enum whose name ends with ErrorCode
    known = {member.value for enum in code_enums().values() for member in enum}
    modules = all_modules(schema)
    enums = {obj for m in modules for name, obj in vars(m).items()
             if isinstance(obj, type) and issubclass(obj, Enum) and name.endswith("ErrorCode")
             and hasattr(obj, "__strawberry_definition__")}
    # then each lists only known codes, INVALID among them (the production fallback)
    assert len(enums) >= 20
    assert {e.__name__: sorted(set(e.__members__) - known) for e in enums if set(e.__members__) - known} == {}
    assert [e.__name__ for e in enums if "INVALID" not in e.__members__] == []


def test_a_code_the_payload_enum_does_not_list_fails_loudly_outside_production():
    # given a payload enum without SLOT_UNAVAILABLE and an error carrying it
    from resolvers.errors import PayloadError
    from schema.shared.common import error_code_enum

    enum = error_code_enum("ProbeErrorCode", [CommonErrorCode.NOT_FOUND, CommonErrorCode.INVALID])
    # when it is mapped (tests run with ODIM_ENVIRONMENT=test)
    with pytest.raises(UnlistedErrorCode, match="ProbeErrorCode does not list SLOT_UNAVAILABLE"):
        coded_errors(enum, PayloadError, [PayloadError("start", "SLOT_UNAVAILABLE", "taken")])
    # and a listed one maps to its member
    assert coded_errors(enum, PayloadError, [PayloadError(None, "NOT_FOUND", "gone")])[0].code is enum.NOT_FOUND
