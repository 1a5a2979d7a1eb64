"""The prediction log: KServe's payload-logger events (``events``), the sink that receives and writes them
(``sink``), the layout of what it writes (``store``), reading a window of it back (``window``) and decoding
its calls (``decode``), and a stand-in of KServe's agent for local loops
(``agent``)."""

# The package's face: other packages import these names from here, never from its modules (tests/unit/test_layering.py).

from gated_training.predictionlog import events, store
from gated_training.predictionlog.decode import DecodedCalls, decode_calls
from gated_training.predictionlog.events import EventError, LoggedEvent, parse_event
from gated_training.predictionlog.sink import Sink, SinkSettings
from gated_training.predictionlog.sink import serve as serve_sink
from gated_training.predictionlog.window import LoggedWindow, read_window

__all__ = [
    "DecodedCalls",
    "EventError",
    "LoggedEvent",
    "LoggedWindow",
    "Sink",
    "SinkSettings",
    "decode_calls",
    "events",
    "parse_event",
    "read_window",
    "serve_sink",
    "store",
]
