"""Jobs of the contexts built beside the scheduler, registered through its hooks:

| job | default schedule | use case (and the command that runs it by hand) |
|---|---|---|
| ``snapshots`` | every 15m | the snapshot kinds with none yet or whose orders changed (``huitouke snapshots refresh --stale-only``) |
| ``identity.index`` | 03:30 daily | every customer's hashed matching keys rebuilt (``huitouke identity index``) |
"""

from __future__ import annotations

from typing import Any

from huitouke.app.scheduler.registry import (
    Job,
    JobContext,
    JobFailed,
    register_job,
    register_snapshot_refresh,
)
from huitouke.store.uow import run_write

__all__: list[str] = []


def _snapshots(ctx: JobContext) -> dict[str, Any]:
    from huitouke.app.snapshots import refresh_stale_snapshots

    reports = refresh_stale_snapshots(ctx.store, ctx.settings)
    result = {
        "refreshed": [r.kind for r in reports if not r.error],
        "failed": {r.kind: r.error for r in reports if r.error},
    }
    if result["failed"]:
        kinds = ", ".join(sorted(result["failed"]))
        raise JobFailed(
            f"snapshots not refreshed: {kinds}",
            code="snapshot.refresh_failed",
            message_zh=f"快照未能刷新:{kinds}",
            result=result,
        )
    return result


def _identity_index(ctx: JobContext) -> dict[str, Any]:
    from huitouke.identity.keys import identity_secret
    from huitouke.identity.service import index_keys

    secret = identity_secret(ctx.settings.secret_key.get_secret_value())
    region = ctx.settings.phone_region
    counts: dict[str, Any] = run_write(
        ctx.store, lambda conn: index_keys(conn, secret=secret, region=region, now=ctx.now)
    )
    return counts


register_snapshot_refresh(_snapshots)
register_job(
    Job(
        "identity.index",
        "cron 30 3 * * *",
        _identity_index,
        {"en": "rebuild the customers' hashed matching keys", "zh": "重建顾客匹配键(哈希)"},
    )
)
