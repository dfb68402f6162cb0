"""Fixtures shared by the integration tests (the servers themselves: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devtools.sandbox import MariaDBServer
from tests.integration.scenario import SHOP_ORDERS_SQL, Source


@pytest.fixture
def shop(mariadb: MariaDBServer, source_db: Callable[[MariaDBServer], str]) -> Source:
    """The shop source: a fresh database on the first MariaDB with the orders table."""
    source = Source("shop", mariadb, source_db(mariadb))
    source.execute(SHOP_ORDERS_SQL)
    return source
