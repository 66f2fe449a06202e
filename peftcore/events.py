"""Where training events go: one small interface, so training knows nothing of processes or databases."""

from __future__ import annotations

import json
import math
from typing import IO, Any, Protocol


class EventSink(Protocol):
    def emit(self, event: dict) -> None: ...


def json_safe(value: Any) -> Any:
    # NaN and infinity are not JSON; the runner parses events with a strict parser.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


class JsonLinesSink:
    """One JSON object per line, flushed at once so the reading process sees progress live."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def emit(self, event: dict) -> None:
        self.stream.write(json.dumps(json_safe(event), allow_nan=False) + "\n")
        self.stream.flush()


class ListSink:
    """Collects events in memory (tests, notebooks). Phase events (what the run is doing, in words) go to
    `phases`, apart from the protocol's events."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.phases: list[str] = []

    def emit(self, event: dict) -> None:
        if event.get("event") == "phase":
            self.phases.append(event["phase"])
        else:
            self.events.append(event)

    def of(self, kind: str) -> list[dict]:
        return [e for e in self.events if e.get("event") == kind]


def phase(sink, text: str) -> None:
    """Tell the runner what the run is doing now ("loading the model"), for the job page."""
    sink.emit({"event": "phase", "phase": text})


class TeeSink:
    """Sends each event to several sinks (e.g. JSON on stdout and a progress bar on stderr)."""

    def __init__(self, *sinks: EventSink):
        self.sinks = sinks

    def emit(self, event: dict) -> None:
        for sink in self.sinks:
            sink.emit(event)
