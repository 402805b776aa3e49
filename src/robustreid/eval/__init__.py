"""robustreid.eval"""
