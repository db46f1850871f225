"""The `whisperq` command line."""
