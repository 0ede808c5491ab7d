"""Delivery policy as pure values and functions: retry schedules and decisions, event-type
patterns, and Standard Webhooks signing. Nothing in this package does I/O.
"""
