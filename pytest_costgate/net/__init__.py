"""HTTP plumbing shared by the model backends and the comment platforms: sessions with a hard wall-clock deadline
(httpguard.py), retry timing from Retry-After and rate-limit headers (retry.py), server-sent events (sse.py).

May import: safety.
"""
