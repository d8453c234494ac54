"""Jobs of the contexts built beside the scheduler, registered through its hooks:

| job | default schedule | use case (and the command that runs it by hand) |
|---|---|---|
| ``snapshots`` | every 15m | the snapshot kinds with none yet or whose orders changed (``huitouke snapshots refresh --stale-only``) |
| ``identity.index`` | 03:30 daily | every customer's hashed matching keys rebuilt (``huitouke identity index``) |
| ``connectors`` | every 5m | every active shop connector pulled once (``huitouke connectors sync NAME``); one failing connector does not stop the others |
| ``connectors.inbox`` | every 1m | webhook deliveries still pending a minute after they arrived applied (``huitouke connectors retry NAME``): what a stopped service acknowledged and did not apply, refunds whose order is fetched |
"""

from __future__ import annotations

from typing import Any

from huitouke.app.scheduler.registry import (
    Job,
    JobContext,
    JobFailed,
    register_connector_pulls,
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


def _connectors(ctx: JobContext) -> dict[str, Any]:
    from huitouke.app.connectors import list_connectors, sync
    from huitouke.errors import HuitoukeError

    synced: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for row in list_connectors(ctx.store):
        if row["status"] != "active":
            continue
        try:
            synced[row["name"]] = sync(ctx.store, ctx.settings, row["name"]).as_dict()
        except HuitoukeError as exc:
            failed[row["name"]] = exc.code
    result = {"synced": synced, "failed": failed}
    if failed:
        names = ", ".join(sorted(failed))
        raise JobFailed(
            f"connectors not synced: {names}",
            code="connector.sync_failed",
            message_zh=f"连接器未能同步:{names}",
            result=result,
        )
    return result


register_snapshot_refresh(_snapshots)
register_connector_pulls(_connectors)
register_job(
    Job(
        "identity.index",
        "cron 30 3 * * *",
        _identity_index,
        {"en": "rebuild the customers' hashed matching keys", "zh": "重建顾客匹配键(哈希)"},
    )
)


def _connectors_inbox(ctx: JobContext) -> dict[str, Any]:
    from datetime import timedelta

    from huitouke.app.connectors import apply_pending

    # a minute's margin: what arrived since is the services' background appliers' to apply
    done = apply_pending(
        ctx.store, ctx.settings, received_before=ctx.now - timedelta(minutes=1), now=ctx.now
    )
    failed = sorted(n for n, c in done.items() if "error" in c)
    if failed:
        raise JobFailed(
            f"connectors whose inbox was not applied: {', '.join(failed)}",
            code="connector.sync_failed",
            message_zh=f"连接器收件箱未能处理:{', '.join(failed)}",
            result=done,
        )
    return {"applied": done}


register_job(
    Job(
        "connectors.inbox",
        "every 1m",
        _connectors_inbox,
        {
            "en": "apply the webhook deliveries still pending in the connectors' inboxes",
            "zh": "处理连接器收件箱中仍待处理的推送",
        },
    )
)
