"""HTTP API v1 (API.md). Routers call services; they never open a session themselves."""
