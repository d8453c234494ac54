"""Repurchase prediction: BTYD models, spend, CLV and the expected next-order date.

Models (fit by maximum likelihood; ``fit`` returns ``self``; fitted values end in ``_``):

- :class:`BGNBD` — Fader, Hardie & Lee (2005);
- :class:`ParetoNBD` — Schmittlein, Morrison & Colombo (1987);
- :class:`MBGNBD` — Batislam, Denizel & Filiztekin (2007);
- :class:`BGBB` — Fader, Hardie & Shang (2010), discrete time;
- :class:`GammaGamma` — Fader & Hardie (2013), spend per order.

See docs/models.md for the definitions, the reproduced published results and usage.
"""

from huitouke.models.bgbb import BGBB
from huitouke.models.bgnbd import BGNBD, MBGNBD
from huitouke.models.clv import customer_lifetime_value
from huitouke.models.evaluation import (
    HoldoutEvaluation,
    NextOrderCalibration,
    evaluate_holdout,
    next_order_calibration,
)
from huitouke.models.gamma_gamma import GammaGamma
from huitouke.models.pnbd import ParetoNBD
from huitouke.models.selection import (
    MODELS,
    FitProblem,
    ModelSelection,
    diagnose_fit,
    fit_model,
    select_model,
)
from huitouke.models.summary import (
    calibration_and_holdout_summary,
    first_holdout_order,
    summary_from_transactions,
)

__all__ = [
    "BGBB",
    "BGNBD",
    "MBGNBD",
    "MODELS",
    "FitProblem",
    "GammaGamma",
    "HoldoutEvaluation",
    "ModelSelection",
    "NextOrderCalibration",
    "ParetoNBD",
    "calibration_and_holdout_summary",
    "customer_lifetime_value",
    "diagnose_fit",
    "evaluate_holdout",
    "first_holdout_order",
    "fit_model",
    "next_order_calibration",
    "select_model",
    "summary_from_transactions",
]
