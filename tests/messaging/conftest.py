"""Fixtures of the messaging tests (real servers live in msg_support)."""

from msg_support import sink, smtp_server

__all__ = ["sink", "smtp_server"]
