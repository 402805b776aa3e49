"""robustreid.transforms"""
