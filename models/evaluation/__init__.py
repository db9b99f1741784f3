"""Holdout metrics, evaluation tables, plots and the report page."""
