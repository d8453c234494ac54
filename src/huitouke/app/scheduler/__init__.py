"""The scheduler: the recurring work of the product, run by itself (docs/scheduler.md).

- :mod:`.schedule` — ``every N`` / ``cron …`` in the merchant's zone, slots, daylight saving;
- :mod:`.registry` — the jobs and their effective schedules; the registration hooks;
- :mod:`.jobs` — the built-in jobs (each calls the use case a command would);
- :mod:`.locks` — PostgreSQL advisory locks, SQLite leases;
- :mod:`.history` and :mod:`.tables` — the ``scheduler_runs`` history;
- :mod:`.runner` — the loop, the catch-up, a run by hand;
- :mod:`.views` — what the CLI and the API show.

It lives in the application layer: it calls use cases of several contexts, and only the
doors (the ``huitouke scheduler`` command, ``huitouke serve``, the REST API) start or read it.
"""

from huitouke.app.scheduler import messages as _messages  # noqa: F401  (registers the texts)
from huitouke.app.scheduler.registry import (
    Job,
    JobContext,
    JobFailed,
    JobSkipped,
    Registry,
    register_connector_pulls,
    register_job,
    register_snapshot_refresh,
)
from huitouke.app.scheduler.runner import Scheduler, run_job_now

__all__ = [
    "Job",
    "JobContext",
    "JobFailed",
    "JobSkipped",
    "Registry",
    "Scheduler",
    "register_connector_pulls",
    "register_job",
    "register_snapshot_refresh",
    "run_job_now",
]
