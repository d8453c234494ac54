"""Shared domain vocabulary: order statuses, money, the canonical orders table."""
