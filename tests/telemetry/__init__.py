"""Metrics (EMF) and traces (OpenTelemetry)."""
