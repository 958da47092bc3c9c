"""Answers computed from stored results: best configurations, verdicts and their statistics,
confirmation plans, warm starts, the paper's tables and hyperparameter importance. Reads storage
only through ``storage.queries`` (typed rows) and ``storage.schemas``; writes nothing."""
