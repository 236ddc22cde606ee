"""Builders of valid results documents and a corpus of hostile ones, for the schema and submission tests."""
