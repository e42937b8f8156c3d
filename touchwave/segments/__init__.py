"""Audiences: rules over subscriber fields and attributes, compiled to SQL."""
