"""Aggregator: rolling NPS per window, counted once per response, on /metrics."""
