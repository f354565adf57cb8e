from sqlalchemy import text

from models.db import session_scope
from tests.support.factories import make_service


async def test_database_has_postgis_and_empty_tables():
    async with session_scope() as s:
        version = await s.scalar(text("SELECT postgis_lib_version()"))
        count = await s.scalar(text("SELECT count(*) FROM services"))
    assert version.startswith("3.")
    assert count == 0


async def test_factories_write_rows():
    service, tiers = await make_service(tiers=3)
    assert [t.position for t in tiers] == [0, 1, 2]
