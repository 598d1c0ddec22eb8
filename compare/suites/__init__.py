"""Benchmark suites: named, versioned lists of prompt cases, run k times per model.

Each case-sample of a suite run is an ordinary Run (`Run.suite_run`), so votes,
notes, history and exports work on it as on any other run.
"""
