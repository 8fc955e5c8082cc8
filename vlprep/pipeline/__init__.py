"""Turning a job into a Ray Data plan, and the exactly-once store it writes."""
