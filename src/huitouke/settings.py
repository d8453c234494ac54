"""One settings object for the whole package (pydantic-settings, environment-driven).

Every setting is read from the environment with the prefix ``HUITOUKE_`` (for example
``HUITOUKE_TIMEZONE=Europe/London``) or from a ``.env`` file in the working directory.
Each field's ``description`` is its documentation: ``docs/settings.md`` is generated from
this class (``huitouke settings --markdown``) and a test fails when the two disagree.

Secrets (keys, passwords, tokens, and URLs that carry a token) are :class:`~pydantic.SecretStr`:
they print as ``**********`` wherever a setting is shown or logged, and code that needs one
asks for it with ``.get_secret_value()``. :meth:`Settings.public_dump` is what the CLI and
the API show: every secret ``***`` (or empty when unset), a secret URL reduced to its
scheme and host, the store URL without its password. A new secret declared ``SecretStr``
is hidden everywhere without further work.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from huitouke.errors import ConfigError

__all__ = ["Settings", "get_settings", "load_settings", "mask_url"]


def mask_url(url: str) -> str:
    """``https://user:pw@host:8443/hook?key=…`` → ``https://host:8443/***``: the scheme and the
    host say where it points; user, password, path and query may be the credential."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "***"
    if not parts.scheme or not host:
        return "***"
    return f"{parts.scheme}://{host}{port}/***"


def _mask_store_url(url: str) -> str:
    """The database URL with its password as ``***`` (as SQLAlchemy renders it with
    ``hide_password``); parsed with the standard library so the settings, which domain
    modules read, import no database library."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return mask_url(url)
    if password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HUITOUKE_", env_file=".env", extra="ignore", validate_default=True
    )

    # --- store -----------------------------------------------------------------------
    database_url: str = Field(
        "sqlite:///huitouke.db",
        description="SQLAlchemy URL of the store: a SQLite file (default) or "
        "postgresql+psycopg://user@host/db.",
    )

    # --- Spark engine ------------------------------------------------------------------
    spark_master: str = Field(
        "local[*]",
        description="Spark master of `--engine spark`: local[N] / local[*] (Spark in this "
        "process's JVM), spark://host:7077, or a Spark Connect URL sc://host:15002.",
    )
    spark_driver_memory: str | None = Field(
        None,
        pattern=r"^\s*\d+\s*[kKmMgGtT]?\s*$",
        description="Heap of the Spark driver JVM the CLI starts (spark.driver.memory, e.g. "
        "8g). With a local[N] master the driver is also the only executor, so this is all "
        "the memory Spark has. Empty: half of this machine's memory for local masters "
        "(instead of Spark's own default, 1g); the cluster's spark-defaults for spark:// "
        "masters. Not used for sc:// (the Connect server has its own).",
    )

    # --- DuckDB engine -----------------------------------------------------------------
    duckdb_memory_limit: str | None = Field(
        None,
        pattern=r"^\s*\d+(\.\d+)?\s*([KMGT]i?B|B)\s*$",
        description="Memory the DuckDB engine's operators may hold (e.g. 12GB, 800MiB); past "
        "it they spill to duckdb_temp_directory. Empty: DuckDB's default, 80 % of the "
        "machine's memory. Orders read from Parquet are not held in memory at all.",
    )
    duckdb_temp_directory: Path | None = Field(
        None,
        description="Where the DuckDB engine spills past duckdb_memory_limit. Empty: "
        "huitouke-duckdb in the system's temporary directory.",
    )

    # --- merchant ----------------------------------------------------------------------
    timezone: str = Field(
        "Asia/Shanghai",
        description="The merchant's IANA time zone; every period boundary (day, week, month…) "
        "is cut in this zone.",
    )
    currency: str = Field("CNY", description="Default ISO 4217 currency of amounts without one.")
    lang: str = Field("zh", description="Default language of user-facing text: zh or en.")
    phone_region: str = Field(
        "CN",
        pattern=r"^[A-Z]{2}$",
        description="Country (ISO 3166 alpha-2) a phone number without a country code is read "
        "in, when phone numbers are normalised to E.164 to match one customer across platforms.",
    )
    identity_auto_merge: str = Field(
        "union_id",
        pattern=r"^\s*((union_id|phone|email)\s*(,\s*(union_id|phone|email)\s*)*)?$",
        description="Matching keys that merge accounts into one person as soon as an order or "
        "customer brings them (comma-separated: union_id, phone, email; empty: none — merge "
        "with `huitouke identity matches --apply` or by hand). Each merge is recorded.",
    )

    # --- segments (BRIEF: seed layering) -------------------------------------------------
    layer_new_days: int = Field(
        45, description="新顾客/活跃老顾客 window: last order within N days."
    )
    layer_cooling_days: int = Field(
        90, description="观察期 ends (高挽回 starts) when the last order is N days old."
    )
    layer_high_winback_days: int = Field(
        180, description="高挽回顾客 ends (低挽回 starts) when the last order is N days old."
    )
    layer_lost_days: int = Field(
        360, description="流失 when the last order is more than N days old."
    )
    merge_same_day_orders: bool = Field(
        False, description="Count several orders of one customer on one day as one order."
    )

    # --- service -------------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address `huitouke serve` binds to.")
    port: int = Field(8000, description="Port `huitouke serve` listens on.")
    service_threads: int = Field(
        8,
        description="Worker threads per `huitouke serve` process that run the database work of "
        "requests. More threads overlap more PostgreSQL round trips but contend for Python's "
        "GIL (measured at saturation: on PostgreSQL 8 threads served more redemptions than 4 "
        "or 40; on SQLite, whose writes run one at a time anyway, 4 served slightly more than "
        "8). For more throughput run more worker processes (`--workers`).",
    )
    thread_switch_ms: float = Field(
        1.0,
        description="How long, in milliseconds, a thread of a `huitouke serve` worker may keep "
        "Python's interpreter lock while another waits for it (Python's default is 5). A "
        "database thread back from a PostgreSQL round trip then resumes sooner while the "
        "event loop is busy parsing requests, which shortens the latency tail under load "
        "(0: keep Python's default).",
    )
    program_cache_seconds: float = Field(
        1.0,
        description="How long a `huitouke serve` worker uses the loyalty program it loaded "
        "before checking the store for a newer version (0: check in every request). A "
        "program saved through a worker's API takes effect in that worker at once.",
    )
    sqlite_checkpoint_seconds: float = Field(
        1.0,
        description="On SQLite, `huitouke serve` copies the write-ahead log into the database "
        "from a background thread this often, so no request waits for it (0: SQLite's "
        "default, the commit that fills the log does it).",
    )
    api_key_cache_seconds: float = Field(
        2.0,
        description="How long a worker trusts an API key it has verified (0: check the store on "
        "every request). A key revoked through the API stops working at once in that worker; "
        "in other workers and after `huitouke apikey revoke` within this many seconds.",
    )
    orders_batch_max: int = Field(
        1000,
        ge=1,
        le=10_000,
        description="Most order events one `POST /v1/orders/batch` request may carry (one unit "
        "of work: on SQLite it holds the write lock while it runs).",
    )
    orders_group_commit_max: int = Field(
        200,
        ge=1,
        le=10_000,
        description="Most `POST /v1/orders` events that arrive together one `huitouke serve` "
        "worker commits in one unit of work (group commit: each is answered as if posted "
        "alone; 1: one unit per event).",
    )
    request_max_bytes: int = Field(
        2 * 1024 * 1024,
        ge=1024,
        description="Largest request body, in bytes, `huitouke serve` reads (2 MiB). A larger "
        "one is answered 413 `request.too_large` before it is read: at once when its "
        "Content-Length says so, as soon as the limit is passed when it is sent in chunks. "
        "Requests with a body to an endpoint that needs a key are authenticated before "
        "anything of the body is read.",
    )
    orders_batch_event_bytes: int = Field(
        8192,
        ge=512,
        description="Room per order event in `POST /v1/orders/batch`: that endpoint reads at "
        "most `orders_batch_max` times this many bytes (8 MiB by default).",
    )
    secret_key: SecretStr = Field(
        SecretStr("change-me"),
        description="Secret for signed links (unsubscribe, tracked clicks) and webhook HMACs. "
        "Set a long random value in production.",
    )
    encryption_keys: SecretStr = Field(
        SecretStr(""),
        description="Keys that encrypt stored credentials (connector tokens, channel "
        "passwords) with AES-256-GCM: comma-separated, each the URL-safe base64 of 32 bytes "
        "(`huitouke settings --new-encryption-key` prints one). The first encrypts, all "
        "decrypt: rotate by putting a new key first. Empty: storing a credential is refused.",
    )

    # --- merchant console ------------------------------------------------------------------
    console_session_idle_minutes: int = Field(
        30,
        ge=1,
        description="A console session ends after this many minutes without a request "
        "(the user signs in again).",
    )
    console_session_max_hours: int = Field(
        12,
        ge=1,
        description="A console session ends this many hours after sign-in, however active.",
    )
    console_cookie_secure: str = Field(
        "auto",
        description="The console's cookies carry `Secure`: `auto` (when the request came over "
        "https, or `public_base_url` is https), `always` or `never` (plain http on a trusted "
        "network only).",
    )
    console_lockout_failures: int = Field(
        5,
        ge=1,
        description="Failed console sign-ins in a row after which the user is locked out "
        "(`auth.locked_out`) for `console_lockout_minutes`.",
    )
    console_lockout_minutes: int = Field(
        15, ge=1, description="How long a locked-out console user must wait before signing in."
    )
    console_login_rate_max: int = Field(
        20,
        ge=1,
        description="Failed console sign-ins one client address may make within "
        "`console_login_rate_window_seconds`; past that it is answered 429 "
        "`auth.rate_limited` whatever the user name.",
    )
    console_login_rate_window_seconds: int = Field(
        300, ge=1, description="The window of `console_login_rate_max`, in seconds."
    )
    console_upload_max_bytes: int = Field(
        100 * 1024 * 1024,
        ge=1024,
        description="Largest export file the console's Data page accepts, in bytes (100 MiB); "
        "a larger upload is answered 413 `request.too_large` as any request over its limit.",
    )

    # --- messaging ---------------------------------------------------------------------
    sms_price_per_segment: Decimal = Field(
        Decimal("0.045"), description="Cost of one SMS segment, in the default currency."
    )
    quiet_hours_start: str = Field("21:00", description="Start of quiet hours (customer's zone).")
    quiet_hours_end: str = Field("08:00", description="End of quiet hours (customer's zone).")
    contact_caps: str = Field(
        "marketing:*:3/7d,marketing:sms:1/3d,marketing:sms:4/30d",
        description="Frequency caps per customer, comma-separated `kind:channel:count/window` "
        "(kind: marketing, transactional or *; channel: a name or * for all; window in d or h); "
        "sliding windows. Empty: no caps.",
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8000",
        description="Public address of the service, for links in messages (unsubscribe, tracked clicks).",
    )
    sms_sign_name: str = Field(
        "", description="SMS signature (店名) shown as 【…】 and sent as the provider's SignName."
    )
    sms_footer: str = Field("回T退订", description="Unsubscribe footer appended to marketing SMS.")
    sms_footer_en: str = Field(
        "Reply STOP to opt out",
        description="Unsubscribe footer of marketing SMS in English (kept in GSM-7).",
    )
    sms_provider: str = Field(
        "", description="SMS channel provider: aliyun, tencent, file or empty (off)."
    )
    aliyun_access_key_id: str = Field("", description="Aliyun AccessKey ID for dysmsapi SendSms.")
    aliyun_access_key_secret: SecretStr = Field(
        SecretStr(""), description="Aliyun AccessKey secret."
    )
    aliyun_sms_endpoint: str = Field(
        "https://dysmsapi.aliyuncs.com/", description="Aliyun SMS API endpoint."
    )
    aliyun_sms_template_code: str = Field(
        "", description="Default Aliyun SMS template code (a message may name its own)."
    )
    tencent_secret_id: str = Field("", description="Tencent Cloud SecretId for SMS SendSms.")
    tencent_secret_key: SecretStr = Field(SecretStr(""), description="Tencent Cloud SecretKey.")
    tencent_sms_endpoint: str = Field(
        "https://sms.tencentcloudapi.com/", description="Tencent Cloud SMS API endpoint."
    )
    tencent_sms_region: str = Field("ap-guangzhou", description="Tencent Cloud SMS region.")
    tencent_sms_app_id: str = Field("", description="Tencent Cloud SmsSdkAppId.")
    tencent_sms_template_id: str = Field(
        "", description="Default Tencent Cloud SMS template id (a message may name its own)."
    )
    smtp_host: str = Field("", description="SMTP server for the email channel (empty: email off).")
    smtp_port: int = Field(587, description="SMTP port.")
    smtp_username: str = Field("", description="SMTP login (empty: no AUTH).")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP password.")
    smtp_starttls: bool = Field(True, description="Upgrade the SMTP connection with STARTTLS.")
    smtp_ssl: bool = Field(
        False, description="Connect with implicit TLS (SMTPS, usually port 465)."
    )
    email_from: str = Field("shop@example.com", description="From address of emails.")
    webhook_url: SecretStr = Field(
        SecretStr(""), description="Endpoint of the signed JSON webhook channel (empty: off)."
    )
    webhook_secret: SecretStr = Field(
        SecretStr(""), description="HMAC-SHA256 key of webhook signatures (empty: use secret_key)."
    )
    wecom_robot_url: SecretStr = Field(
        SecretStr(""), description="WeCom (企业微信) group robot webhook URL (empty: off)."
    )
    wecom_corp_id: str = Field(
        "", description="WeCom corp id (企业ID) for the private-domain features (empty: off)."
    )
    wecom_contact_secret: SecretStr = Field(
        SecretStr(""),
        description="Secret of WeCom's customer-contact application (客户联系 Secret).",
    )
    wecom_callback_token: SecretStr = Field(
        SecretStr(""), description="Token of the customer-contact callback (回调 Token)."
    )
    wecom_encoding_aes_key: SecretStr = Field(
        SecretStr(""),
        description="EncodingAESKey of the customer-contact callback (43 characters).",
    )
    wecom_api_base_url: str = Field(
        "https://qyapi.weixin.qq.com",
        description="Base URL of WeCom's server API (point it at a local fake to test).",
    )
    dingtalk_robot_url: SecretStr = Field(
        SecretStr(""),
        description="DingTalk (钉钉) group robot webhook URL with access_token (empty: off).",
    )
    dingtalk_secret: SecretStr = Field(
        SecretStr(""), description="DingTalk robot signing secret (SEC…), if set."
    )
    file_channel_path: str = Field(
        "", description="JSON-lines file of the file (dry-run) channel; '-' prints to the console."
    )
    inbound_token: SecretStr = Field(
        SecretStr(""),
        description="Token providers must pass (?token=) to inbound SMS and receipt callbacks "
        "(empty: derived from secret_key; see `huitouke inbound-token`).",
    )

    at_most_once_channels: str = Field(
        "",
        description="Channels sent at most once, comma-separated (e.g. `email,sms`): each message "
        "is marked as started before it leaves, and one a crashed worker had started is "
        "dead-lettered (`crash.unknown`), never sent twice.",
    )
    dispatch_mark_every: int = Field(
        32,
        ge=1,
        description="The dispatcher commits sent marks every N provider answers (or after "
        "`dispatch_mark_ms`); a killed worker repeats at most concurrency + N messages.",
    )
    dispatch_mark_ms: float = Field(
        20.0,
        ge=0.0,
        description="Longest wait, in milliseconds, before a provider's answer is committed as sent.",
    )

    # --- journeys and measurement -----------------------------------------------------------
    holdout_salt: str = Field(
        "huitouke-holdout-v1",
        description="Salt of the holdout hash (journey id + customer id). Changing it reshuffles "
        "every journey's holdout group.",
    )
    attribution_window_days: int = Field(
        7,
        description="An order within N days after a send (or holdout assignment) is attributed to it.",
    )

    # --- prediction ------------------------------------------------------------------------
    prediction_margin: float = Field(
        1.0,
        ge=0.0,
        le=1.0,
        description="Share of spend kept as profit in `huitouke predict`'s CLV (1.0: CLV is "
        "discounted revenue; e.g. 0.3 for a 30% gross margin).",
    )
    prediction_discount_rate: float = Field(
        0.10,
        ge=0.0,
        description="Annual discount rate of `huitouke predict`'s CLV (0.10 = 10% a year), "
        "applied monthly.",
    )

    # --- scheduler (docs/scheduler.md) ---------------------------------------------------
    scheduler: str = Field(
        "on",
        description="on: `huitouke serve` also runs the scheduler (the recurring jobs); off: "
        "it does not (run `huitouke scheduler` as its own process instead).",
    )
    webhook_apply: str = Field(
        "auto",
        pattern="^(auto|service|scheduler)$",
        description="Where webhook deliveries are applied once stored and acknowledged. "
        "service: in the `huitouke serve` worker that received them, right after the answer. "
        "scheduler: the scheduler's process applies them as they arrive (polling the inbox "
        "every `HUITOUKE_WEBHOOK_APPLY_POLL_SECONDS`, at lowered CPU priority), so the "
        "workers only answer (with the scheduler off nothing applies them but a separate "
        "`huitouke scheduler`). auto: scheduler when `huitouke serve` runs two workers or "
        "more on PostgreSQL with its scheduler on, else service.",
    )
    webhook_apply_poll_seconds: float = Field(
        0.1,
        gt=0,
        le=60,
        description="With `HUITOUKE_WEBHOOK_APPLY=scheduler`: how often the scheduler looks "
        "for new webhook deliveries when there were none, in seconds.",
    )
    scheduler_schedules: str = Field(
        "",
        description="Job schedules that differ from the defaults, `;`-separated "
        "`JOB=every N{s,m,h,d}`, `JOB=cron M H DOM MON DOW` (wall-clock time in the merchant's "
        "zone) or `JOB=off`; e.g. `outbox=every 5s; journeys=off`. `huitouke scheduler jobs` "
        "lists the jobs.",
    )
    scheduler_tick_seconds: float = Field(
        1.0, gt=0, description="How often the scheduler looks for due jobs, in seconds."
    )
    scheduler_lease_seconds: float = Field(
        30.0,
        gt=0,
        description="Length of the scheduler's and the jobs' leases on a SQLite store (renewed "
        "every third of it while held; a dead holder's lease is taken over when it expires).",
    )
    scheduler_history_days: int = Field(
        30, ge=1, description="Days of run history the `scheduler.prune` job keeps."
    )
    scheduler_clock_start: str = Field(
        "",
        description="Drills and tests only: the scheduler's clock starts at this ISO instant "
        "(with an offset) instead of now, and jobs act as of that clock. Empty: real time.",
    )
    scheduler_clock_speed: float = Field(
        1.0,
        gt=0,
        description="Drills and tests only: how many times as fast as real time the scheduler's "
        "clock runs when `scheduler_clock_start` is set.",
    )

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {v!r} (use an IANA name such as Asia/Shanghai)"
            ) from exc
        return v

    @field_validator("console_cookie_secure")
    @classmethod
    def _valid_cookie_secure(cls, v: str) -> str:
        if v not in ("auto", "always", "never"):
            raise ValueError("console_cookie_secure must be 'auto', 'always' or 'never'")
        return v

    @field_validator("scheduler")
    @classmethod
    def _valid_scheduler(cls, v: str) -> str:
        if v not in ("on", "off"):
            raise ValueError("scheduler must be 'on' or 'off'")
        return v

    @field_validator("lang")
    @classmethod
    def _valid_lang(cls, v: str) -> str:
        if v not in ("zh", "en"):
            raise ValueError("lang must be 'zh' or 'en'")
        return v

    def public_dump(self) -> dict[str, Any]:
        """Every setting as JSON values, secrets hidden (what `huitouke settings` and
        ``GET /v1/settings`` show)."""
        out: dict[str, Any] = self.model_dump(mode="json")
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                secret = value.get_secret_value()
                out[name] = mask_url(secret) if name.endswith("_url") else ("***" if secret else "")
        out["database_url"] = _mask_store_url(self.database_url)
        return out

    @classmethod
    def is_secret(cls, name: str) -> bool:
        field = cls.model_fields.get(name)
        return field is not None and field.annotation is SecretStr

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


#: Chinese reasons of the validators above (pydantic's own messages are English only).
_REASON_ZH = {
    "timezone": "未知时区(请用 IANA 名称,例如 Asia/Shanghai)",
    "lang": "只能是 zh 或 en",
    "console_cookie_secure": "只能是 auto、always 或 never",
    "scheduler": "只能是 on 或 off",
    "spark_driver_memory": "应为内存大小,例如 8g 或 4096m",
}


def settings_error(exc: ValidationError) -> ConfigError:
    """One line naming every bad variable, its value and why, in en and zh."""
    en, zh = [], []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "?"
        var = f"HUITOUKE_{field.upper()}"
        value = err.get("input")
        shown = "" if isinstance(value, dict) or Settings.is_secret(field) else f"={value!r}"
        reason = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        en.append(f"{var}{shown}: {reason}")
        zh.append(f"{var}{shown}:{_REASON_ZH.get(field, reason)}")
    return ConfigError(
        "invalid setting " + "; ".join(en),
        code="settings.invalid",
        message_zh="设置无效 " + ";".join(zh),
    )


def load_settings() -> Settings:
    """The settings from the environment; :class:`ConfigError` ``settings.invalid`` (one
    line naming the variable) instead of pydantic's traceback when one is invalid."""
    try:
        return Settings()
    except ValidationError as exc:
        raise settings_error(exc) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()
