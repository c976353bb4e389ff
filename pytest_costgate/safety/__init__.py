"""What keeps untrusted input and secrets from doing harm, for every stage: the error tree users see instead of
tracebacks (errors.py), the one redaction point (redact.py), escaping per medium (escape.py), and bounds on
untrusted work: deadlines (deadlines.py) and the limited Jinja sandbox with its render watchdog (sandbox.py).

May import: nothing else of costgate.
"""
