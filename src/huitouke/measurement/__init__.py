"""Measurement: tracked links, attribution, uplift against holdout groups, insert campaigns.

``journey_results(conn, as_of)`` is the one call reports and the API use.
"""

from huitouke.measurement.attribution import campaign_results, journey_results
from huitouke.measurement.links import make_link_token, tracked_url, verify_link_token
from huitouke.measurement.stats import diff_proportions, wilson

__all__ = [
    "campaign_results",
    "diff_proportions",
    "journey_results",
    "make_link_token",
    "tracked_url",
    "verify_link_token",
    "wilson",
]
