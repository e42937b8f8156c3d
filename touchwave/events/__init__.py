"""Customer events: the catalog of event types, payload conditions, and ingest (which
enters matching subscribers into running trigger campaigns)."""
