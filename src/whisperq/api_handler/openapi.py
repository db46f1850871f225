"""The API's OpenAPI 3.1 document, generated from the routes and their models (handler.py,
contract.py) and served at GET /openapi.json; tests and the schemathesis run check answers against it."""

from __future__ import annotations

import functools
import json
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, Server

from whisperq import __version__

DESCRIPTION = ("Queue-driven audio transcription with Whisper. Create a job, upload the audio straight to S3 with "
               "the returned form or URL, poll the job, download transcripts.")


@functools.cache
def document(app: APIGatewayRestResolver, public: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The document, built once per container. A refused request is a 400 here (an Error, named in each
    route's answers), not the 422 of Powertools' default, which is taken out; the `public` paths need no
    key (an empty `security`, which the generator leaves out)."""
    schema = app.get_openapi_json_schema(
        title="whisperq", version=__version__, description=DESCRIPTION, servers=[Server(url="/")],
        security_schemes={"apiKey": APIKey.model_validate({"name": "x-api-key", "in": APIKeyIn.header,
                                                            "description": "or Authorization: Bearer <key>"})},
        security=[{"apiKey": []}])
    doc: dict[str, Any] = json.loads(schema)
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            operation["responses"].pop("422", None)
            if path in public:
                operation["security"] = []
    for name in ("HTTPValidationError", "ValidationError"):
        doc["components"]["schemas"].pop(name, None)
    return doc
