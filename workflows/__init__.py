"""Temporal workflow code only: deterministic orchestration, no I/O."""
