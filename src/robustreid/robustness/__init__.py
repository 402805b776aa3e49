"""robustreid.robustness"""
