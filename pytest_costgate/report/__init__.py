"""Renderings of a costgate/1 document: terminal table (JSON is the document itself)."""
