"""Reports from replay results: HTML/Markdown reports, run comparisons and the validation report."""

from pipeline.report.build import build_report, make_report
from pipeline.report.results import RunResults, load_many, load_results

__all__ = ["RunResults", "build_report", "load_many", "load_results", "make_report"]
