"""The API key of a request, from `x-api-key` (whisperq's clients) or `Authorization: Bearer`
(OpenAI's clients), and the API Gateway REQUEST authorizer that hands it to the usage plans.

The API's key source is AUTHORIZER: this function only says which key the request carries (as
`usageIdentifierKey`); API Gateway then checks that key against the usage plan, throttles and counts
it exactly as it does an x-api-key header, and refuses unknown keys with 403."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def api_key_of(headers: Mapping[str, str] | Any) -> str | None:
    """The key a request carries; x-api-key wins over a Bearer token."""
    lowered = {str(name).lower(): value for name, value in (headers or {}).items()}
    key = lowered.get("x-api-key")
    if key:
        return str(key).strip() or None
    authorization = str(lowered.get("authorization") or "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """REQUEST authorizer: allow the call with the key it carries (API Gateway then validates the key);
    no key at all is refused here ("Unauthorized" is API Gateway's 401)."""
    key = api_key_of(event.get("headers") or {})
    if key is None:
        raise Exception("Unauthorized")  # noqa: TRY002 - the exact message API Gateway maps to 401
    return {
        "principalId": "api-key",
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}]},
        "usageIdentifierKey": key,
    }
