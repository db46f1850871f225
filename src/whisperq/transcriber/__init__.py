"""The transcriber: an SQS batch Lambda handler, Whisper engines and model resolution."""
