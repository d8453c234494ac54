"""Sample data bundled with huitouke.

``cdnow/`` holds the CDNOW data of Fader & Hardie as distributed with the ``lifetimes``
package: ``CDNOW_master.txt`` (69,659 transactions of 23,570 customers, 1997-01..1998-06;
columns customer id, date YYYYMMDD, number of CDs, dollar value, header line first) and
``CDNOW_sample.txt`` (the 1/10 sample used in the BTYD literature: master id, sample id,
date, CDs, dollars; no header). See ``cdnow/ATTRIBUTION.md``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["CDNOW_MASTER", "CDNOW_SAMPLE", "DATA_DIR"]

DATA_DIR = Path(__file__).parent
CDNOW_MASTER = DATA_DIR / "cdnow" / "CDNOW_master.txt"
CDNOW_SAMPLE = DATA_DIR / "cdnow" / "CDNOW_sample.txt"
