"""The typed job record as DynamoDB items, and back: one attribute per field, named as core names them
(whisperq.core.jobs.camel), the parts (timeline, measurements, fan-out state) flattened into the item,
a lease's fields prefixed with `lease`, a last call's with `lastCall`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from whisperq.core.jobs import ChunkRecord, FanOutState, Job, JobStatus, RunStats, Timeline, attributes_of, camel
from whisperq.core.leases import LastCall, Lease

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

LEASE_PREFIX = "lease_"
# The Job fields that are parts of the record, flattened into the item.
_PARTS = {"timeline": Timeline, "run": RunStats, "fanout": FanOutState}
_LEASE_ATTRIBUTES = {camel(LEASE_PREFIX + f.name): f.name for f in fields(Lease)}
_LAST_CALL_ATTRIBUTES = {camel("last_call_" + f.name): f.name for f in fields(LastCall)}
_FLATTENED = {"lease", "last_call"}  # Job fields stored as prefixed attributes


def to_dynamo(value: Any) -> Any:
    """A Python value as boto3's serializer takes it (floats as Decimal)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, Mapping):
        return {k: to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_dynamo(v) for v in value]
    return value


def from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_dynamo(v) for v in value]
    return value


def serialize(value: Any) -> dict[str, Any]:
    """One value in DynamoDB's typed form."""
    typed: dict[str, Any] = _serializer.serialize(to_dynamo(value))
    return typed


def plain(item: Mapping[str, Any]) -> dict[str, Any]:
    """An item (DynamoDB's typed form) as plain Python values."""
    return {k: from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def lease_attributes(lease: Lease) -> dict[str, Any]:
    """A lease's attributes (leaseId, leaseExpiresAt, leaseMessageId)."""
    return {name: getattr(lease, field) for name, field in _LEASE_ATTRIBUTES.items()
            if getattr(lease, field) is not None}


def lease_from(values: Mapping[str, Any]) -> Lease | None:
    if "leaseId" not in values:
        return None
    return Lease(str(values["leaseId"]), float(values.get("leaseExpiresAt", 0)), values.get("leaseMessageId"))


LEASE_NAMES = tuple(_LEASE_ATTRIBUTES)
LAST_CALL_NAMES = tuple(_LAST_CALL_ATTRIBUTES)


def last_call_attributes(call: LastCall) -> dict[str, Any]:
    """A last call's attributes (lastCallMessageId, lastCallAt...)."""
    return {name: getattr(call, field) for name, field in _LAST_CALL_ATTRIBUTES.items()
            if getattr(call, field) is not None}


def with_last_call(update: Any, call: LastCall | None) -> Any:
    """`update` (an expressions.Update), noting `call` on the item, or, when the work is taken by a delivery
    that is not a last one, removing a note an earlier message left: that message no longer carries it."""
    return update.set(last_call_attributes(call)) if call is not None else update.remove(LAST_CALL_NAMES)


def last_call_from(values: Mapping[str, Any]) -> LastCall | None:
    if "lastCallMessageId" not in values:
        return None
    return LastCall(**{field: values[name] for name, field in _LAST_CALL_ATTRIBUTES.items() if name in values})


def _part_from(cls: type, values: Mapping[str, Any]) -> Any:
    return cls(**{f.name: values[camel(f.name)] for f in fields(cls) if camel(f.name) in values})


def item_to_job(item: Mapping[str, Any]) -> Job:
    """The typed job of an item; attributes the record does not know (an index key) are ignored."""
    values = plain(item)
    scalars = {f.name: values[camel(f.name)] for f in fields(Job)
               if f.name not in _PARTS and f.name not in _FLATTENED and camel(f.name) in values}
    scalars["status"] = JobStatus(scalars["status"])
    parts: dict[str, Any] = {"timeline": _part_from(Timeline, values), "run": _part_from(RunStats, values)}
    if "chunks" in values:
        parts["fanout"] = _part_from(FanOutState, values)
    return Job(**scalars, **parts, lease=lease_from(values), last_call=last_call_from(values))


def job_attributes(job: Job) -> dict[str, Any]:
    """Every attribute of a job's item, as plain values (None fields left out)."""
    values: dict[str, Any] = {}
    for f in fields(Job):
        value = getattr(job, f.name)
        if f.name in _PARTS:
            values.update(attributes_of(value) if value is not None else {})
        elif f.name == "lease":
            values.update(lease_attributes(value) if value is not None else {})
        elif f.name == "last_call":
            values.update(last_call_attributes(value) if value is not None else {})
        elif value is not None:
            values[camel(f.name)] = value.value if isinstance(value, JobStatus) else value
    return values


def job_to_item(job: Job) -> dict[str, Any]:
    """The item that stores a job."""
    return {name: serialize(value) for name, value in job_attributes(job).items()}


def item_to_chunk(item: Mapping[str, Any]) -> ChunkRecord:
    values = plain(item)
    return ChunkRecord(str(values["jobId"]), int(values["chunk"]), lease_from(values), int(values.get("attempts", 0)),
                       values.get("doneBy"), last_call_from(values))
