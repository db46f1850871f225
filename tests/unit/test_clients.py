"""The client factory: one endpoint for every service, or DynamoDB's own where it has one (the twin)."""

from whisperq.aws.clients import Clients
from whisperq.config import Settings


def test_clients_when_dynamodb_has_its_own_endpoint_then_only_dynamodb_goes_there():
    settings = Settings.from_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:4001",
                                  "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:4002", "AWS_REGION": "eu-west-1"})
    clients = Clients(settings, {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})
    assert clients.dynamodb.meta.endpoint_url == "http://127.0.0.1:4002"
    for service in ("s3", "sqs", "xray"):
        assert clients.get(service).meta.endpoint_url == "http://127.0.0.1:4001", service


def test_clients_when_one_endpoint_then_every_service_uses_it():
    clients = Clients(Settings.from_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:4001", "AWS_REGION": "eu-west-1"}),
                      {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"})
    assert {clients.get(s).meta.endpoint_url for s in ("dynamodb", "s3", "sqs")} == {"http://127.0.0.1:4001"}
