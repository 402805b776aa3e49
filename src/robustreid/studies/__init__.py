"""Small self-contained studies (``robustreid study ...``). Each module runs end to end on bundled data."""
