"""The short GraphQL fuzzing pass of ``make test`` (the long one is ``make fuzz``; see tests/system/fuzzing.py).

Schemathesis generates cases for every Query and Mutation field and sends each as anonymous, a
customer, a provider and an admin (MFA-verified) to a real uvicorn process, with the rate limits
raised (tests.system.fuzzing.FUZZ_SERVER_ENV) so 429s do not hide the resolvers.
"""

from __future__ import annotations

import asyncio
import os

import pytest

from tests.support.live_harness import Server
from tests.system import fuzzing

pytestmark = pytest.mark.e2e

# About 2 examples per (field, role) pair; about a minute on 2 cores. FUZZ_SEED picks another
# deterministic sample (the long pass draws a random seed each run and prints it).
SHORT_PASS_CASES = 500
SHORT_PASS_SEED = int(os.environ.get("FUZZ_SEED", "20261122"))


async def test_a_short_fuzz_pass_as_every_role_gets_no_5xx_no_unmasked_and_no_internal_errors():
    # given: the demo marketplace, a token per role, and a real server
    known_ids = await fuzzing.seed_data()
    tokens = {role: await fuzzing.mint_token(role) for role in fuzzing.ROLES}
    server = Server(**fuzzing.FUZZ_SERVER_ENV)
    await server.start()
    try:
        # when: schemathesis sends its generated cases as each role
        report = await asyncio.to_thread(
            fuzzing.run, server.base, tokens, cases=SHORT_PASS_CASES, seed=SHORT_PASS_SEED, known_ids=known_ids,
            remint=fuzzing.mint_token_sync,
        )
    finally:
        server.stop()
    print(report.summary())

    # then: every field was tried as every role, and nothing failed
    operations = {f"Query.{name}" for name in fuzzing.load_schema().client_schema.query_type.fields} | {
        f"Mutation.{name}" for name in fuzzing.load_schema().client_schema.mutation_type.fields}
    assert set(report.operations) == operations
    assert set(report.cases) == set(fuzzing.ROLES)
    assert min(report.cases.values()) >= SHORT_PASS_CASES // len(fuzzing.ROLES)
    assert [str(f) for f in report.findings] == [], report.summary()
    assert report.count("5xx") == report.count("unmasked") == report.count("internal") == 0
