"""Running the requests: the backend seam and its implementations (backends/), the replay loop with its timing,
counting and pricing of each answer (measure.py), incremental replay (incremental.py, identity.py), shards and
devices (shards.py, devices.py), the machine-speed probe (probe.py) and progress lines (progress.py).

May import: safety, net, config, pricing, store, inputs.
"""
