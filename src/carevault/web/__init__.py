"""The web edge: FastAPI app factory and thin routes."""
