"""robustreid.models"""
