"""A capacity and cost planner for the AWS pipeline, calibrated by the project's measurements."""
