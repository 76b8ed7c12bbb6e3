"""Spec repos: load (YAML with line marks), schema, templates, variables, matrix, Job.

`resolve()` is the one path from files to Jobs; the server uses it too (docs/architecture.md).
"""

from afx.spec.job import Job
from afx.spec.resolve import Resolution, resolve

__all__ = ["Job", "Resolution", "resolve"]
