"""robustreid.eval: distances, CMC / mAP / mINP, TPR@FPR, k-reciprocal re-ranking, gallery index, feature files.

Heavy or optional parts (re-ranking, the FAISS gallery index) are imported on first use.
"""

from .distance import METRICS, compute_distance
from .features import FeatureSet, load_features, save_features
from .metrics import EvalResult, evaluate, evaluate_distances

__all__ = ["METRICS", "compute_distance", "FeatureSet", "load_features", "save_features", "EvalResult", "evaluate",
           "evaluate_distances", "re_rank", "GalleryIndex"]


def __getattr__(name):
    if name == "re_rank":
        from .rerank import re_rank

        return re_rank
    if name == "GalleryIndex":
        from .index import GalleryIndex

        return GalleryIndex
    raise AttributeError(f"module 'robustreid.eval' has no attribute {name!r}")
