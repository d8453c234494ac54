"""Opening the store for one command: the store is disposed of whatever happens, and a unit
of work is one transaction (a write commits whole or not at all)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from huitouke.store.db import Store

__all__ = ["opened_store", "read", "write"]

T = TypeVar("T")


@contextmanager
def opened_store(database_url: str | None) -> Iterator[Store]:
    """The store at ``database_url`` (or the settings'), migrated, disposed of on exit."""
    from huitouke.store.db import open_store

    store = open_store(database_url)
    try:
        yield store
    finally:
        store.dispose()


def write(database_url: str | None, fn: Callable[[Connection], T]) -> T:
    """``fn`` in one write transaction of the store."""
    with opened_store(database_url) as store, store.begin() as conn:
        return fn(conn)


def read(database_url: str | None, fn: Callable[[Connection], T]) -> T:
    """``fn`` on one connection of the store (no write)."""
    with opened_store(database_url) as store, store.connect() as conn:
        return fn(conn)
