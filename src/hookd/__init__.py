"""hookd: webhook and notification delivery.

Producers publish events; hookd durably fans each one out to every subscribed endpoint,
signs it (Standard Webhooks), delivers it with retries, and keeps a log of every attempt.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
