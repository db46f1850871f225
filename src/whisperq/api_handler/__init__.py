"""The API Gateway (REST, proxy integration) Lambda handler."""
