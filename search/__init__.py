"""soundalike.search."""
