"""Importing order files: presets for the common exports, validation, rejects, upsert.

Public API::

    from huitouke.importing import read_orders, import_file, PRESETS

``read_orders(path, preset=None, *, timezone=None, mapping=None, sheet=None)`` reads and
validates a file into a :class:`ReadResult` (canonical orders, lines, customer attributes,
rejects); ``import_file(store, path, ...)`` stores it as one all-or-nothing batch through
:func:`huitouke.store.orders_repo.upsert_orders`. See docs/import.md.
"""

from huitouke.importing import messages as _messages  # noqa: F401  (registers texts)
from huitouke.importing.build import Reject
from huitouke.importing.presets import PRESETS, Preset
from huitouke.importing.reader import ReadResult, read_orders
from huitouke.importing.service import ImportSummary, import_file, write_rejects

__all__ = [
    "PRESETS",
    "ImportSummary",
    "Preset",
    "ReadResult",
    "Reject",
    "import_file",
    "read_orders",
    "write_rejects",
]
