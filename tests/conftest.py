"""Shared fixtures: real SQLite files and, when HUITOUKE_TEST_POSTGRES_URL is set, the real
PostgreSQL (each test gets a fresh database created for it and dropped after)."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from huitouke.store.db import Store

PG_ENV = "HUITOUKE_TEST_POSTGRES_URL"
REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The shared real data sets (CDNOW, Online Retail, donations), if present."""
    return Path(os.environ.get("HUITOUKE_SHARED_DATA", REPO.parent / "shared" / "data"))


def postgres_admin_url() -> str | None:
    return os.environ.get(PG_ENV) or None


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'huitouke.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    admin = postgres_admin_url()
    if not admin:
        pytest.skip(f"PostgreSQL tests need {PG_ENV} (set by .ci/run)")
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"huitouke_t_{uuid.uuid4().hex[:12]}"
    base = make_url(admin)
    conninfo = f"host={base.host or '127.0.0.1'} port={base.port or 5432} user={base.username or 'postgres'} dbname={base.database or 'postgres'}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = str(
        base.set(drivername="postgresql+psycopg", database=name).render_as_string(
            hide_password=False
        )
    )
    try:
        yield url
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """Parametrises a test over both backends."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = Store(store_url)
    s.migrate()
    try:
        yield s
    finally:
        s.dispose()


#: The Spark master of the parity tests: Spark in this process's JVM on two threads.
SPARK_TEST_MASTER = "local[2]"


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One SparkSession for the whole run (UI and progress bars off, 2 shuffle partitions,
    session zone UTC); the tests skip with the reason when pyspark or Java is missing."""
    from huitouke.analytics.spark import spark_unavailable

    reason = spark_unavailable(SPARK_TEST_MASTER)
    if reason is not None:
        pytest.skip(f"Spark tests need pyspark (the spark extra) and Java: {reason}")
    from pyspark.sql import SparkSession

    # the Python workers of the scoring UDFs run this interpreter (huitouke installed)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master(SPARK_TEST_MASTER)
        .appName("huitouke-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    try:
        yield session
    finally:
        session.stop()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist (``--dist loadgroup``, scripts/test.sh) every Spark test runs on
    one worker, so the run starts one JVM and one SparkSession, not one per worker."""
    for item in items:
        if item.get_closest_marker("spark") is not None or "spark" in getattr(
            item, "fixturenames", ()
        ):
            item.add_marker(pytest.mark.xdist_group("spark"))
