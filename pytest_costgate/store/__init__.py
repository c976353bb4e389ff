"""The `costgate/1` document (baseline and report): its typed records (document.py, records.py, verdicts.py), read
from disk once and checked field by field (schema.py, schema_prompts.py, jsonreader.py), written atomically and
redacted (write.py), stamped with where and by what it was made (stamp.py). Only this package reads documents.

May import: safety, config.
"""
