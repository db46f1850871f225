"""API Gateway's API keys: the id a key's jobs are owned by."""

from __future__ import annotations

from whisperq.aws.clients import Clients
from whisperq.core.errors import InvalidRequest


class ApiKeys:
    def __init__(self, clients: Clients):
        self._gateway = clients.get("apigateway")

    def create(self, name: str, value: str) -> str:
        """A new enabled key with this value; its id."""
        return str(self._gateway.create_api_key(name=name, value=value, enabled=True)["id"])

    def id_of(self, value: str) -> str:
        """The id of the key with this value (looked up by value, as jobs are owned by the id)."""
        for page in self._gateway.get_paginator("get_api_keys").paginate(includeValues=True):
            for item in page.get("items", []):
                if item.get("value") == value:
                    return str(item["id"])
        raise InvalidRequest("the API key is not one of this account's API Gateway keys (is the region right?)")
