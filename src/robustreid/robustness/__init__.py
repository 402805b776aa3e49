"""robustreid.robustness: the corruption robustness benchmark (protocols, runner, summaries, correlation).

    >>> from robustreid.robustness import run_benchmark, read_results, protocol_summary
"""

from .apply import CorruptionTransform
from .correlation import correlate, correlation_analysis, robustness_by_model
from .protocols import MODES, PROTOCOLS, Cell, build_cells, mix_choice, parse_corruptions, parse_severities
from .results import COLUMNS, ResultStore, load_runs, read_results
from .runner import run_benchmark, subset_identities, topk_ranking
from .summary import (corruption_matrix, error_ratio, family_summary, format_table, protocol_summary,
                      robustness_table)

__all__ = [
    "COLUMNS", "Cell", "CorruptionTransform", "MODES", "PROTOCOLS", "ResultStore", "build_cells", "correlate",
    "correlation_analysis", "corruption_matrix", "error_ratio", "family_summary", "format_table", "load_runs",
    "mix_choice", "parse_corruptions", "parse_severities", "protocol_summary", "read_results", "robustness_by_model",
    "robustness_table", "run_benchmark", "subset_identities", "topk_ranking",
]
