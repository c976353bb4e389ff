"""What people read: numbers formatted as money, tokens and shares (numbers.py), notes and driver sentences
(notes.py, drivers.py), the terminal tables (terminal.py), the PR comment in Markdown (markdown.py),
pytest-benchmark JSON (benchmark_json.py), and the files a run leaves (files.py). Only this package formats
figures for people.

May import: safety, config, store, judge, gate.
"""
