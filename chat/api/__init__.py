"""The HTTP API under /api/v1/: thin DRF views over chat.services and chat.selectors."""
