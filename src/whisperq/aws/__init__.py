"""Adapters: the only code that imports boto3/botocore. botocore errors become core errors here."""
