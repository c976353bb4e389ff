"""costgate.yaml read into frozen, validated values: the located YAML reader (yamlsrc.py), what the values mean
(specs.py), the reader itself (loader.py), the lever settings (levers.py), the metric catalogue and threshold
syntax (thresholds.py), and the names a model's `backend:` may take (registry.py).

May import: safety.
"""
