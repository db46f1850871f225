"""The local twin: moto server, provisioning, HTTP front, event-source-mapping emulator."""
