"""Typed insight candidates: detectors per insight type, and their ranking."""
