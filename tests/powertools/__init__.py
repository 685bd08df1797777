"""The Powertools drop-in."""
