"""Helpers shared by the test tiers (real receivers, settings)."""
