"""Text helpers without models: ASR line clean-up, POS alignment, entity word filters."""
