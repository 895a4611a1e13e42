"""Reporting: leaderboards (tables), their statistics (bootstrap CIs, paired tests), and figures.

:func:`report` turns a run's per-model results into the run folder's tables and figures.
"""

from benchmark.reporting.report import report, write_score_tables

__all__ = ["report", "write_score_tables"]
