"""soundalike.api."""
