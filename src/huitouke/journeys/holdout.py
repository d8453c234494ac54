"""Holdout assignment: random, stable per (journey, customer), at any audience size.

``u = mix64(H(salt ‖ customer_id) XOR H(salt ‖ journey_id)) / 2**64`` is a uniform number in
[0, 1) that depends only on the salt, the journey and the customer; the customer is held out
when ``u < share``. ``H`` is the first 8 bytes of BLAKE2b (stable across Python versions and
machines, unlike ``hash()``); ``mix64`` is the SplitMix64 finaliser, so the XOR of two
hashes is mixed again and neighbouring journeys do not hold out the same customers.
Hashing each customer once and mixing per journey in NumPy keeps 1M customers × all
journeys well under a second.

Because it is a pure function, nothing has to be stored for the group to be stable — but
the evaluation records every assignment (``journey_assignments``) so that measurement
compares exactly the customers who were eligible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

__all__ = ["customer_hashes", "holdout_mask", "holdout_uniform", "is_holdout"]

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _h64(salt: str, text: str) -> int:
    digest = hashlib.blake2b(f"{salt}\x1f{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def customer_hashes(customer_ids: Iterable[str], salt: str) -> npt.NDArray[np.uint64]:
    """One 64-bit hash per customer id (computed once per evaluation)."""
    return np.fromiter((_h64(salt, c) for c in customer_ids), dtype=np.uint64)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def holdout_uniform(
    journey_id: str, hashes: npt.NDArray[np.uint64], salt: str
) -> npt.NDArray[np.float64]:
    """The uniform [0, 1) number of each customer for ``journey_id``."""
    mixed = _mix(hashes ^ np.uint64(_h64(salt, "journey:" + journey_id)))
    # the top 53 bits make an exactly representable double in [0, 1)
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def holdout_mask(
    journey_id: str, hashes: npt.NDArray[np.uint64], share: float, salt: str
) -> npt.NDArray[np.bool_]:
    if share <= 0:
        return np.zeros(len(hashes), dtype=bool)
    return holdout_uniform(journey_id, hashes, salt) < share


def is_holdout(journey_id: str, customer_id: str, share: float, salt: str) -> bool:
    """Scalar form, for one customer (API, tests)."""
    return bool(holdout_mask(journey_id, customer_hashes([customer_id], salt), share, salt)[0])
