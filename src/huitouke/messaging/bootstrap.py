"""Wiring: channels and the dispatcher from the settings (one place, swapped in tests).

The settings given are the environment's; :func:`make_dispatcher` puts the settings an
admin stored (console, ``PUT /v1/settings/stored``) over them with
:func:`huitouke.store.stored_settings.effective_settings` — the one merge every place that
builds channels or contact rules uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from huitouke.errors import ConfigError
from huitouke.messaging.channels.base import Channel
from huitouke.messaging.dispatcher import Dispatcher
from huitouke.messaging.rules import ContactPolicy
from huitouke.messaging.tokens import derive_inbound_token
from huitouke.settings import Settings
from huitouke.store.db import Store
from huitouke.store.stored_settings import effective_settings

__all__ = ["build_channels", "inbound_token", "make_dispatcher", "webhook_secret"]


def webhook_secret(settings: Settings) -> str:
    return settings.webhook_secret.get_secret_value() or settings.secret_key.get_secret_value()


def inbound_token(settings: Settings) -> str:
    return settings.inbound_token.get_secret_value() or derive_inbound_token(
        settings.secret_key.get_secret_value()
    )


def build_channels(settings: Settings, only: Iterable[str] | None = None) -> dict[str, Channel]:
    """Every channel the settings configure (logical name → channel), or just ``only``."""
    wanted = set(only) if only is not None else None
    out: dict[str, Channel] = {}

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    if settings.webhook_url.get_secret_value() and want("webhook"):
        from huitouke.messaging.channels.webhook import WebhookChannel

        out["webhook"] = WebhookChannel(
            settings.webhook_url.get_secret_value(), webhook_secret(settings)
        )
    if settings.smtp_host and want("email"):
        from huitouke.messaging.channels.smtp import SmtpChannel

        out["email"] = SmtpChannel(
            settings.smtp_host,
            settings.smtp_port,
            from_addr=settings.email_from,
            secret=settings.secret_key.get_secret_value(),
            public_base_url=settings.public_base_url,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value(),
            starttls=settings.smtp_starttls,
            use_ssl=settings.smtp_ssl,
        )
    if settings.wecom_robot_url.get_secret_value() and want("wecom"):
        from huitouke.messaging.channels.robots import WeComRobotChannel

        out["wecom"] = WeComRobotChannel(settings.wecom_robot_url.get_secret_value())
    if (
        settings.wecom_corp_id
        and settings.wecom_contact_secret.get_secret_value()
        and want("wecom_contact")
    ):
        from huitouke.messaging.channels.wecom_api import WeComClient
        from huitouke.messaging.channels.wecom_contact import WeComContactChannel

        out["wecom_contact"] = WeComContactChannel(
            WeComClient(
                settings.wecom_api_base_url,
                settings.wecom_corp_id,
                settings.wecom_contact_secret.get_secret_value(),
            )
        )
    if settings.dingtalk_robot_url.get_secret_value() and want("dingtalk"):
        from huitouke.messaging.channels.robots import DingTalkRobotChannel

        out["dingtalk"] = DingTalkRobotChannel(
            settings.dingtalk_robot_url.get_secret_value(),
            settings.dingtalk_secret.get_secret_value(),
        )
    if settings.sms_provider and want("sms"):
        out["sms"] = _sms_channel(settings)
    if settings.file_channel_path and want("file"):
        from huitouke.messaging.channels.file import FileChannel

        out["file"] = FileChannel(settings.file_channel_path)
    if wanted is not None:
        missing = sorted(wanted - set(out))
        if missing:
            raise ConfigError(
                f"channel(s) not configured: {', '.join(missing)}",
                code="settings.channel_missing",
                message_zh=f"以下渠道未配置:{', '.join(missing)}",
                details={"channels": missing},
            )
    return out


def _sms_channel(settings: Settings) -> Channel:
    provider = settings.sms_provider
    if provider == "aliyun":
        from huitouke.messaging.channels.aliyun import AliyunSmsChannel

        if not (
            settings.aliyun_access_key_id and settings.aliyun_access_key_secret.get_secret_value()
        ):
            raise ConfigError(
                "Aliyun SMS needs HUITOUKE_ALIYUN_ACCESS_KEY_ID and _SECRET",
                code="settings.channel_missing",
                message_zh="阿里云短信需要配置 HUITOUKE_ALIYUN_ACCESS_KEY_ID 和 _SECRET",
            )
        return AliyunSmsChannel(
            settings.aliyun_access_key_id,
            settings.aliyun_access_key_secret.get_secret_value(),
            sign_name=settings.sms_sign_name,
            template_code=settings.aliyun_sms_template_code,
            endpoint=settings.aliyun_sms_endpoint,
        )
    if provider == "tencent":
        from huitouke.messaging.channels.tencent import TencentSmsChannel

        if not (
            settings.tencent_secret_id
            and settings.tencent_secret_key.get_secret_value()
            and settings.tencent_sms_app_id
        ):
            raise ConfigError(
                "Tencent SMS needs HUITOUKE_TENCENT_SECRET_ID, _SECRET_KEY and _SMS_APP_ID",
                code="settings.channel_missing",
                message_zh="腾讯云短信需要配置 HUITOUKE_TENCENT_SECRET_ID、_SECRET_KEY 和 _SMS_APP_ID",
            )
        return TencentSmsChannel(
            settings.tencent_secret_id,
            settings.tencent_secret_key.get_secret_value(),
            app_id=settings.tencent_sms_app_id,
            sign_name=settings.sms_sign_name,
            template_id=settings.tencent_sms_template_id,
            endpoint=settings.tencent_sms_endpoint,
            region=settings.tencent_sms_region,
        )
    if provider == "file":
        from huitouke.messaging.channels.file import FileChannel

        return FileChannel(settings.file_channel_path or "-", name="sms")
    raise ConfigError(
        f"unknown SMS provider {provider!r} (aliyun, tencent or file)",
        code="settings.invalid",
        message_zh=f"未知的短信服务商 {provider!r}(可选 aliyun、tencent、file)",
    )


def make_dispatcher(
    settings: Settings,
    store: Store,
    *,
    channels: Mapping[str, Channel] | None = None,
    only: Iterable[str] | None = None,
    rate_limits: Mapping[str, float] | None = None,
    **kwargs: object,
) -> Dispatcher:
    settings = effective_settings(store, settings)
    chans = dict(channels) if channels is not None else build_channels(settings, only)
    kwargs.setdefault("mark_every", settings.dispatch_mark_every)
    kwargs.setdefault("mark_ms", settings.dispatch_mark_ms)
    kwargs.setdefault(
        "at_most_once",
        [c.strip() for c in settings.at_most_once_channels.split(",") if c.strip()],
    )
    return Dispatcher(
        store,
        chans,
        rate_limits=rate_limits,
        policy=ContactPolicy.from_settings(settings),
        **kwargs,  # type: ignore[arg-type]
    )
