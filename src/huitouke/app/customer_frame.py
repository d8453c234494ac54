"""The per-customer view the doors show (``huitouke customers``; the web console next): the
analytics' table with the one model policy's scores. The function itself lives with that
policy, in :mod:`huitouke.prediction.customer_frame`, so the report — below this layer —
builds its lifecycle with the same code."""

from huitouke.prediction.customer_frame import PREDICTION_COLUMNS, CustomerFrame, customer_frame

__all__ = ["PREDICTION_COLUMNS", "CustomerFrame", "customer_frame"]
