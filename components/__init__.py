"""Thin KFP components: each maps KFP artifacts to one gated_training library call."""
