"""A measured suite judged against its baseline, in pure functions (no I/O): aggregates (aggregate.py), the paired
statistics (stats.py), rows and levels (verdict.py), the comparison itself (compare.py), budgets, quality,
machine-speed calibration, fingerprints, the cost split (attribution.py) and the run's summary (summary.py).

May import: safety, config, pricing, store.
"""
