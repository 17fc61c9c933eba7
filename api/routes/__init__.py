"""soundalike.api.routes."""
