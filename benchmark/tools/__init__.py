"""Measurement scripts (metric and model speed): tools run with ``python -m``, not library API."""
