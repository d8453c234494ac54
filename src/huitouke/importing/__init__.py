"""Importing order files: presets for the common exports, validation, rejects, upsert.

Public API::

    from huitouke.importing import read_orders, write_rejects, PRESETS

``read_orders(path, preset=None, *, timezone=None, mapping=None, sheet=None)`` reads and
validates a file into a :class:`ReadResult` (canonical orders, lines, customer attributes,
rejects). Storing it is the application layer's use case,
:func:`huitouke.app.imports.import_file`, which records the orders as every door does.
See docs/import.md.
"""

from huitouke.importing import messages as _messages  # noqa: F401  (registers texts)
from huitouke.importing.build import Reject
from huitouke.importing.presets import PRESETS, Preset
from huitouke.importing.reader import ReadResult, read_orders
from huitouke.importing.rejects import write_rejects

__all__ = [
    "PRESETS",
    "Preset",
    "ReadResult",
    "Reject",
    "read_orders",
    "write_rejects",
]
