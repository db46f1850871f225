"""whisperq: queue-driven audio transcription with OpenAI Whisper, on AWS or on a local twin."""

__version__ = "0.1.0"
