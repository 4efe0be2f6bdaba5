"""Judges: a Sample in, a Verdict out. See judges/registry.py for the names, judges/rewards.py for trl."""
from catalogs.records import Sample, Verdict
from judges.registry import JUDGES, JudgeSpec, get_judge, run_judge

__all__ = [
           "JUDGES",
           "JudgeSpec",
           "Sample",
           "Verdict",
           "get_judge",
           "run_judge",
]
