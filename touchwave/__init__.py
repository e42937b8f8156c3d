"""touchwave: multi-channel campaign engine."""
