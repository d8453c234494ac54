"""Reminder journeys: definitions (YAML and API), built-in templates from the seeds,
vectorised evaluation with holdout groups, dry-run explanations and related products.

The domain modules (model, calendar, holdout, frame, engine, associations) import no
database or web library; :mod:`huitouke.journeys.service` runs a plan inside a unit of work
(assignments, coupons, the messaging outbox); the REST service's
:mod:`huitouke.service.routers.journeys` is the HTTP face.
"""

from huitouke.journeys import messages as _messages  # noqa: F401  (registers texts)
from huitouke.journeys.calendar import HOLIDAYS, Promotion, holiday_date, holidays_between
from huitouke.journeys.engine import EvaluationContext, Plan, PlannedMessage, evaluate
from huitouke.journeys.holdout import holdout_uniform, is_holdout
from huitouke.journeys.loader import (
    builtin_journeys,
    load_journey_file,
    load_journey_text,
    load_journeys,
)
from huitouke.journeys.model import Audience, Journey, Trigger

__all__ = [
    "HOLIDAYS",
    "Audience",
    "EvaluationContext",
    "Journey",
    "Plan",
    "PlannedMessage",
    "Promotion",
    "Trigger",
    "builtin_journeys",
    "evaluate",
    "holdout_uniform",
    "holiday_date",
    "holidays_between",
    "is_holdout",
    "load_journey_file",
    "load_journey_text",
    "load_journeys",
]
