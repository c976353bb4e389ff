"""Where the PR comment goes: the sticky-comment platforms (github.py).

May import: safety, net.
"""
