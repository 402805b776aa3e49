"""robustreid.viz"""
