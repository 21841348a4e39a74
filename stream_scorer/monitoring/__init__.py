"""Monitoring of served models against their training baselines."""

from __future__ import annotations

from stream_scorer.monitoring.drift import DriftMonitor, DriftReport, monitored_features, psi
from stream_scorer.monitoring.tracker import DriftTracker

__all__ = ["DriftMonitor", "DriftReport", "DriftTracker", "monitored_features", "psi"]
