"""Settings stored in the database that override the environment: the channels (SMTP, SMS
providers, webhook, WeCom and DingTalk robots) and the contact rules (caps, quiet hours).

The environment (``HUITOUKE_*``, :class:`huitouke.settings.Settings`) stays the base; an
admin may override the settings named in :data:`EDITABLE` from the console or
``PUT /v1/settings``. :func:`effective_settings` is the one function that merges them —
every place that builds channels or contact rules (the dispatcher, ``huitouke worker``,
journey runs, the service) asks it, so a stored value takes effect everywhere alike.

A secret (a :class:`~pydantic.SecretStr` setting) is stored sealed with
:class:`huitouke.core.secretbox.SecretBox` under ``HUITOUKE_ENCRYPTION_KEYS``, bound to the
setting's name (its *context*), so a sealed SMTP password copied into the webhook URL's row
opens nothing. The merged values are validated by the same pydantic field validators as the
environment (``Settings.model_validate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Boolean, Column, Connection, String, Table, Text, delete, select

from huitouke.core.secretbox import SecretBox
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.tables import metadata
from huitouke.store.types import UTCDateTime

__all__ = [
    "EDITABLE",
    "GROUPS",
    "StoredValue",
    "delete_stored",
    "effective_settings",
    "merged",
    "read_stored",
    "settings_overrides",
    "write_stored",
]

settings_overrides = Table(
    "settings_overrides",
    metadata,
    # the Settings field name (smtp_host, contact_caps…)
    Column("name", String(64), primary_key=True),
    # the value as text; a secret's is SecretBox.seal(value, context=name)
    Column("value", Text, nullable=False),
    Column("sealed", Boolean, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("updated_by", String(64), nullable=False),
)

#: The settings an admin may store, by form: the channels and the contact rules.
GROUPS: dict[str, tuple[str, ...]] = {
    "email": (
        "smtp_host",
        "smtp_port",
        "smtp_username",
        "smtp_password",
        "smtp_starttls",
        "smtp_ssl",
        "email_from",
    ),
    "sms": (
        "sms_provider",
        "sms_sign_name",
        "sms_footer",
        "sms_footer_en",
        "sms_price_per_segment",
        "aliyun_access_key_id",
        "aliyun_access_key_secret",
        "aliyun_sms_endpoint",
        "aliyun_sms_template_code",
        "tencent_secret_id",
        "tencent_secret_key",
        "tencent_sms_endpoint",
        "tencent_sms_region",
        "tencent_sms_app_id",
        "tencent_sms_template_id",
    ),
    "webhook": ("webhook_url", "webhook_secret"),
    "robots": ("wecom_robot_url", "dingtalk_robot_url", "dingtalk_secret"),
    "rules": ("contact_caps", "quiet_hours_start", "quiet_hours_end"),
}
EDITABLE: tuple[str, ...] = tuple(n for names in GROUPS.values() for n in names)


@dataclass(frozen=True)
class StoredValue:
    """One stored row as read (a secret's value still sealed)."""

    name: str
    value: str
    sealed: bool
    updated_at: datetime
    updated_by: str


def read_stored(conn: Connection) -> dict[str, StoredValue]:
    rows = conn.execute(select(settings_overrides)).all()
    return {
        r.name: StoredValue(r.name, r.value, bool(r.sealed), r.updated_at, r.updated_by)
        for r in rows
        if r.name in EDITABLE  # a setting no longer editable is ignored, not applied
    }


def write_stored(
    conn: Connection, name: str, value: str, *, sealed: bool, now: datetime, actor: str
) -> None:
    conn.execute(delete(settings_overrides).where(settings_overrides.c.name == name))
    conn.execute(
        settings_overrides.insert().values(
            name=name, value=value, sealed=sealed, updated_at=now, updated_by=actor[:64]
        )
    )


def delete_stored(conn: Connection, name: str) -> bool:
    done = conn.execute(delete(settings_overrides).where(settings_overrides.c.name == name))
    return bool(done.rowcount)


def merged(base: Settings, values: dict[str, Any]) -> Settings:
    """``base`` with ``values`` put over it, validated as the environment is (a
    :class:`pydantic.ValidationError` names the bad field)."""
    data = base.model_dump()
    data.update(values)
    return Settings.model_validate(data)


def _opened(base: Settings, stored: dict[str, StoredValue], open_secrets: bool) -> dict[str, Any]:
    values: dict[str, Any] = {}
    box: SecretBox | None = None
    for name, row in stored.items():
        if not row.sealed:
            values[name] = row.value
            continue
        if not open_secrets:
            # the view never needs the secret: a placeholder shows "set" and hides the rest
            values[name] = SecretStr("stored")
            continue
        if box is None:
            box = SecretBox.from_text(base.encryption_keys.get_secret_value())
        values[name] = SecretStr(box.open(row.value, context=name))
    return values


def effective_settings(
    source: Store | Connection, base: Settings, *, open_secrets: bool = True
) -> Settings:
    """The settings in effect: ``base`` (the environment) with the stored overrides over it.

    ``open_secrets=False`` leaves stored secrets sealed (a placeholder stands in), for views
    that show only whether a secret is set. A stored secret that no configured key opens is
    :class:`~huitouke.errors.InputError` ``secret.unreadable``; stored secrets without any
    key, :class:`~huitouke.errors.ConfigError` ``secret.no_key``.
    """
    if isinstance(source, Store):
        with source.connect() as conn:
            stored = read_stored(conn)
    else:
        stored = read_stored(source)
    if not stored:
        return base
    return merged(base, _opened(base, stored, open_secrets))
