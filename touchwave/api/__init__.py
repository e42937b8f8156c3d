"""The HTTP API (FastAPI): responses from every channel, the passive channels' offers."""
