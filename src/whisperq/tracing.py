"""X-Ray subsegments for the functions' stages (the transcriber's download, decode, transcribe,
upload; the API's request), annotated with the job id so that a trace shows where a job's time went
and `whisperq report` can read it back. In Lambda (and in the twin's emulated Lambda) the recorder
has a segment to hang them on; anywhere else there is none and nothing is recorded."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from aws_lambda_powertools import Logger
from aws_xray_sdk.core import xray_recorder
from aws_xray_sdk.core.models.dummy_entities import DummySegment, DummySubsegment
from aws_xray_sdk.core.models.facade_segment import FacadeSegment

# What the functions log with: Powertools' structured logger in Lambda, a plain one on the twin's threads.
Log = Logger | logging.Logger

# Outside a traced invocation there is no segment: carry on untraced instead of raising.
xray_recorder.configure(context_missing="IGNORE_ERROR")


def _has_segment() -> bool:
    """A real segment to record under: not outside Lambda (none), and not an unsampled or
    header-less invocation (a dummy, on which the SDK would only log warnings)."""
    try:
        entity = xray_recorder.get_trace_entity()
    except Exception:  # noqa: BLE001 - no context at all is the same as no segment
        return False
    return entity is not None and not isinstance(entity, DummySegment | DummySubsegment)


@contextlib.contextmanager
def stage(name: str, **annotations: Any) -> Iterator[None]:
    """Record the block as subsegment `name` with the given annotations, if a trace is open."""
    if not _has_segment():
        yield
        return
    with xray_recorder.in_subsegment(name) as subsegment:
        if subsegment is not None:
            for key, value in annotations.items():
                if value is not None:
                    subsegment.put_annotation(key, value)
        yield


def annotate(**annotations: Any) -> None:
    """Annotate the open subsegment (a job id learnt inside a stage), if a trace is open."""
    if not _has_segment():
        return
    entity = xray_recorder.get_trace_entity()
    if isinstance(entity, FacadeSegment):
        return  # Lambda's own segment takes no annotations: only an open subsegment does
    for key, value in annotations.items():
        if value is not None:
            entity.put_annotation(key, value)
