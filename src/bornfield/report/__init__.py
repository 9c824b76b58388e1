"""Figures 1–5 and one HTML page with the tables and the provenance of every number."""

from bornfield.report.html import write_report

__all__ = ["write_report"]
