"""Repurchase prediction: BTYD models, spend, CLV and the expected next-order date."""

from huitouke.models.bgnbd import BGNBD, MBGNBD
from huitouke.models.gamma_gamma import GammaGamma
from huitouke.models.pnbd import ParetoNBD
from huitouke.models.summary import (
    calibration_and_holdout_summary,
    first_holdout_order,
    summary_from_transactions,
)

__all__ = [
    "BGNBD",
    "MBGNBD",
    "GammaGamma",
    "ParetoNBD",
    "calibration_and_holdout_summary",
    "first_holdout_order",
    "summary_from_transactions",
]
