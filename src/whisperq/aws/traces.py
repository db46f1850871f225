"""X-Ray, as the evaluation reads it and the twin's collector feeds it: the segment documents of the
traces in a time window, and segments put."""

from __future__ import annotations

import json
from typing import Any

from whisperq.aws.clients import Clients

# GetTraceSummaries takes at most 6 hours per call; BatchGetTraces at most 5 ids.
_WINDOW_S = 6 * 3600
_BATCH = 5


class Traces:
    """One account's (or the twin's) X-Ray."""

    def __init__(self, clients: Clients):
        self._xray = clients.get("xray")

    def documents(self, start: float, end: float, filter_expression: str | None = None) -> list[dict[str, Any]]:
        """Every segment document of the traces in [start, end] (epoch seconds)."""
        trace_ids: list[str] = []
        window_start = start
        while window_start < end:
            window_end = min(end, window_start + _WINDOW_S)
            kwargs: dict[str, Any] = {"StartTime": window_start, "EndTime": window_end}
            if filter_expression:
                kwargs["FilterExpression"] = filter_expression
            while True:
                page = self._xray.get_trace_summaries(**kwargs)
                trace_ids += [summary["Id"] for summary in page.get("TraceSummaries", [])]
                if not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
            window_start = window_end
        documents = []
        unique = list(dict.fromkeys(trace_ids))
        for index in range(0, len(unique), _BATCH):
            response = self._xray.batch_get_traces(TraceIds=unique[index:index + _BATCH])
            for trace in response.get("Traces", []):
                for segment in trace.get("Segments", []):
                    documents.append(json.loads(segment["Document"]))
        return documents

    def put(self, documents: list[str]) -> None:
        """Store segment documents (JSON text), as the X-Ray daemon forwards them."""
        self._xray.put_trace_segments(TraceSegmentDocuments=documents)
