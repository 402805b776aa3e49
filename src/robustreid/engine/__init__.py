"""robustreid.engine"""
