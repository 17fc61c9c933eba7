"""soundalike.ingest."""
