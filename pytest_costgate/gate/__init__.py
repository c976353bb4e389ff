"""The stages put together: one suite end to end (suite.py), a sharded suite joined and judged (parts.py), a live
baseline replayed next to the head (live.py), `costgate merge` and `costgate diff` (merge.py, diff.py), and the
baseline update (update.py).

May import: safety, config, pricing, store, inputs, judge, replay.
"""
