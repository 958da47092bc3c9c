"""The results service: FastAPI app (REST + web UI), background sync and CLI."""
