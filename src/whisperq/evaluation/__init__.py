"""Evaluating the pipeline: load tests that flood the queue, and reports that turn them into numbers
and plots."""
