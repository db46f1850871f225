"""The pure domain of whisperq: jobs, statuses, keys, transcripts, writers, errors.

Nothing here imports boto3, reads the environment or knows a Lambda event shape.
"""
