"""Classifier: responses in, responses understood (category and more) out."""
