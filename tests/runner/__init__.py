"""The local event source runner against moto."""
