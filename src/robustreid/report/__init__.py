"""robustreid.report"""
