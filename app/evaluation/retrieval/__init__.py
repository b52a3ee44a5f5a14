"""Retrieval evaluation: question sets with gold passages, the systems compared, metrics.

`medcite eval` (runner.py) ingests each dataset's corpus with the product's own ingest
pipeline and embedder into its own collection, runs every system on every question and
prints one table per dataset. Gold is a source file plus a short substring, never a
chunk id, so the sets survive changes to chunking.
"""
