"""Measurement: tracked links, attribution, uplift against holdout groups, insert campaigns.

The results of journeys are :func:`huitouke.journeys.results.journey_results`, built on the
attribution rules of :mod:`huitouke.measurement.attribution`; measurement itself imports
nothing from the journeys.
"""

from huitouke.measurement.attribution import campaign_results
from huitouke.measurement.links import make_link_token, tracked_url, verify_link_token
from huitouke.measurement.stats import diff_proportions, wilson

__all__ = [
    "campaign_results",
    "diff_proportions",
    "make_link_token",
    "tracked_url",
    "verify_link_token",
    "wilson",
]
