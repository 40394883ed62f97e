"""ade-distill: distil LLM teachers into small biomedical relation extractors.

Pipeline (one sub-package per stage, each leaving a file on disk):
``data`` → ``teacher`` → silver JSONL → ``student`` → ``evaluation`` → ``reports``.
Every stage reads and writes the one record schema in :mod:`ade_distill.records`.
"""

__version__ = "0.1.0"
