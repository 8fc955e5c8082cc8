"""Turning a job into a Ray Data plan whose workers write the store (`vlprep.store`)."""
