"""robustreid.report: the self-contained HTML report of benchmark runs."""

from .html import build_report

__all__ = ["build_report"]
