"""afx: short-form video production as code, compatible with the AuraFlux v1 API."""

__version__ = "0.1.0"
