"""Idempotency: the claims, the in-memory store, the DynamoDB store, the processor with them."""
