"""One settings object for the whole package (pydantic-settings, environment-driven).

Every setting is read from the environment with the prefix ``HUITOUKE_`` (for example
``HUITOUKE_TIMEZONE=Europe/London``) or from a ``.env`` file in the working directory.
Each field's ``description`` is its documentation: ``docs/settings.md`` is generated from
this class (``huitouke settings --markdown``) and a test fails when the two disagree.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "get_settings"]


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

    # --- merchant ----------------------------------------------------------------------
    timezone: str = Field(
        "Asia/Shanghai",
        description="The merchant's IANA time zone; every period boundary (day, week, month…) "
        "is cut in this zone.",
    )
    currency: str = Field("CNY", description="Default ISO 4217 currency of amounts without one.")
    lang: str = Field("zh", description="Default language of user-facing text: zh or en.")

    # --- segments (BRIEF: seed layering) -------------------------------------------------
    layer_new_days: int = Field(45, description="新顾客/活跃老顾客 window: last order within N days.")
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
    secret_key: str = Field(
        "change-me",
        description="Secret for signed links (unsubscribe, tracked clicks) and webhook HMACs. "
        "Set a long random value in production.",
    )

    # --- messaging ---------------------------------------------------------------------
    sms_price_per_segment: Decimal = Field(
        Decimal("0.045"), description="Cost of one SMS segment, in the default currency."
    )
    quiet_hours_start: str = Field("21:00", description="Start of quiet hours (customer's zone).")
    quiet_hours_end: str = Field("08:00", description="End of quiet hours (customer's zone).")

    @field_validator("timezone")
    @classmethod
    def _valid_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Asia/Shanghai)") from exc
        return v

    @field_validator("lang")
    @classmethod
    def _valid_lang(cls, v: str) -> str:
        if v not in ("zh", "en"):
            raise ValueError("lang must be 'zh' or 'en'")
        return v

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def sqlite_path(self) -> Path | None:
        if self.database_url.startswith("sqlite:///"):
            return Path(self.database_url.removeprefix("sqlite:///"))
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
