"""Helpers of tests/test_faults.py: the reliability matrix recorder and a small subprocess pool."""
