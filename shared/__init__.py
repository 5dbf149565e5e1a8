"""The common package of npsloop: event schemas, topics, settings, NPS math and plumbing."""
