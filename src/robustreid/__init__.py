"""robustreid: person re-identification that stays accurate under noise, corruption and occlusion."""

__version__ = "0.1.0"
