"""Ingest: the HTTP edge. Purchases and responses in, events on their topics out."""
