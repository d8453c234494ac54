"""The service's units of work are the store's: see :mod:`huitouke.store.uow`."""

from huitouke.store.uow import (
    StoreBusyError,
    WalCheckpointer,
    read_unit,
    run_read,
    run_write,
    start_checkpointer,
    stop_checkpointer,
    write_unit,
)

__all__ = [
    "StoreBusyError",
    "WalCheckpointer",
    "read_unit",
    "run_read",
    "run_write",
    "start_checkpointer",
    "stop_checkpointer",
    "write_unit",
]
