"""Signals: predictions over a literature run → the table of (drug, adverse effect) pairs that pharmacovigilance
teams read (:func:`~ade_distill.signals.table.aggregate_pairs`; ``ade-distill aggregate``)."""

from ade_distill.signals.table import PairSignal, SignalTable, aggregate_pairs, normalize_term, with_synonyms

__all__ = ["PairSignal", "SignalTable", "aggregate_pairs", "normalize_term", "with_synonyms"]
