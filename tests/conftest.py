"""Shared fixtures: real PostgreSQL and Redis when they answer, a clear skip when they do not.

With TASKENGINE_REQUIRE_SERVICES=1 (set by .ci/run) a missing service fails the test instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlparse

import pytest

PG_DSN = os.environ.get("TASKENGINE_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("TASKENGINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _answers(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=1
        ):
            return True
    except OSError:
        return False


def _need(service: str, url: str, default_port: int) -> None:
    if _answers(url, default_port):
        return
    message = f"{service} not reachable at {url} (start it, or set the TASKENGINE_TEST_* URL)"
    if os.environ.get("TASKENGINE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"TASKENGINE_REQUIRE_SERVICES=1 but {message}")
    pytest.skip(message)


@pytest.fixture
def pg_dsn() -> str:
    """DSN of a real PostgreSQL database; each test gets its own schema-free fresh tables via cleanup."""
    _need("PostgreSQL", PG_DSN, 5432)
    return PG_DSN


@pytest.fixture
def pg_schema(pg_dsn: str):
    """A throwaway PostgreSQL schema name (dropped after the test)."""
    import psycopg

    name = f"te_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def redis_url() -> str:
    """URL of a real Redis server (database 15 by default)."""
    _need("Redis", REDIS_URL, 6379)
    return REDIS_URL
