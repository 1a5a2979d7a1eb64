"""The prediction log: KServe's payload-logger events (``events``), the sink that receives and writes them
(``sink``), the layout of what it writes (``store``), and a stand-in of KServe's agent for local loops
(``agent``)."""

# The package's face: other packages import these names from here, never from its modules (tests/unit/test_layering.py).

from gated_training.predictionlog import events, store
from gated_training.predictionlog.events import EventError, LoggedEvent, parse_event
from gated_training.predictionlog.sink import Sink, SinkSettings
from gated_training.predictionlog.sink import serve as serve_sink

__all__ = ["EventError", "LoggedEvent", "Sink", "SinkSettings", "events", "parse_event", "serve_sink", "store"]
