"""Channel adapters: one module per channel, all HTTP through httpx, each taking a transport."""
