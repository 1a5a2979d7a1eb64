"""One log schema for every step, the CLI's run, the serving runtime and the prediction-log sink.

``GATED_TRAINING_LOG_FORMAT=json`` (set in both images) writes one JSON object per line, in the fields
Cloud Logging, Loki and Elasticsearch read without a parser of their own::

    {"time": "2026-12-04T21:00:30.123456Z", "severity": "INFO", "message": "...", "event": "step.usage",
     "logger": "gated_training", "step": "validate-data", "run_id": "...", "model": "...", "version": "...",
     "fields": {...}}

``severity`` is one of Cloud Logging's names (DEBUG, INFO, NOTICE, WARNING, ERROR, CRITICAL); ``time`` is
RFC 3339 in UTC. ``step``, ``run_id``, ``model`` and ``version`` come from :func:`bind` (``recorded_step``
binds the step and run, a step binds its model and version when it knows them) or from the call; they are
present, possibly empty, on every line, so a query never has to test for a missing key.

Unset (or ``text``), a line is its message alone, as a person at a terminal reads it. Every record of
Python's ``logging`` (kfp's executor, MLflow, GX, uvicorn) goes through the same formatter in JSON mode, and
the interpreter-start hook (:func:`install_startup_hook`, a ``.pth`` line the images and ``make venv``
install) applies it before kfp's executor configures logging, so a pod's log is JSON from its first line.

Hostile values (a category with a newline, a 1 MB label, a NaN) stay one line: JSON escapes control
characters and non-ASCII (``ensure_ascii``: U+2028 is a line break to some readers), strings are cut at
:data:`MAX_VALUE_CHARS`, non-finite numbers are written as strings, and anything else as its ``repr``.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import json
import logging
import math
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator, TextIO

FORMAT_ENV = "GATED_TRAINING_LOG_FORMAT"
FORMATS = ("text", "json")
CONTEXT_KEYS = ("step", "run_id", "model", "version")
MAX_VALUE_CHARS = 2000
MAX_FIELDS = 100
SEVERITIES = ("DEBUG", "INFO", "NOTICE", "WARNING", "ERROR", "CRITICAL")
_LEVEL_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}
_SEVERITY_LEVEL = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "NOTICE": logging.INFO + 5}
_SEVERITY_LEVEL.update({"WARNING": logging.WARNING, "ERROR": logging.ERROR, "CRITICAL": logging.CRITICAL})
PTH_NAME = "gated_training_logs.pth"
PTH_LINE = (
    "import os; os.environ.get('GATED_TRAINING_LOG_FORMAT', '').strip().lower() == 'json' "
    "and __import__('gated_training.logs').logs.configure()\n"
)

_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("gated_training_log", default=None)
_configured = False
_crash_context: dict[str, str] = {}  # the context of the block an escaping error left (keep_for_crash)


def log_format() -> str:
    """``json`` or ``text``, from :data:`FORMAT_ENV`; anything else is text (a log must never fail a run)."""
    value = os.environ.get(FORMAT_ENV, "").strip().lower()
    return value if value in FORMATS else "text"


def bind(**values: str | None) -> None:
    """Set context keys (``step``, ``run_id``, ``model``, ``version``) on every later line of this context."""
    unknown = set(values) - set(CONTEXT_KEYS)
    if unknown:
        raise ValueError(f"logs.bind: unknown keys {sorted(unknown)}; the schema's context is {CONTEXT_KEYS}")
    merged = dict(_context.get() or {})
    merged.update({key: str(value) for key, value in values.items() if value is not None})
    _context.set(merged)


def bound_value(key: str) -> str:
    """The value bound to ``key`` in this context ("" when none): a step's run id, for names it creates."""
    return (_context.get() or {}).get(key, "")


@contextmanager
def bound(**values: str | None) -> Iterator[None]:
    """:func:`bind` for a block; the previous context returns after it."""
    token = _context.set(dict(_context.get() or {}))
    try:
        bind(**values)
        yield
    finally:
        _context.reset(token)


def _clean(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, bounded copy of ``value``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS] + f"…[{len(value)} chars]"
    if depth >= 4:
        return _clean(repr(value), depth)
    if isinstance(value, dict):
        items = list(value.items())
        cleaned = {_clean(str(k), depth): _clean(v, depth + 1) for k, v in items[:MAX_FIELDS]}
        if len(items) > MAX_FIELDS:
            cleaned["…"] = f"{len(items) - MAX_FIELDS} more keys"
        return cleaned
    if isinstance(value, (list, tuple, set, frozenset)):
        seq = list(value)
        cleaned_list = [_clean(v, depth + 1) for v in seq[:MAX_FIELDS]]
        if len(seq) > MAX_FIELDS:
            cleaned_list.append(f"…{len(seq) - MAX_FIELDS} more")
        return cleaned_list
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        try:
            return _clean(value.item(), depth)
        except (TypeError, ValueError):
            pass
    return _clean(str(value), depth)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def render(
    event: str,
    message: str,
    *,
    severity: str = "INFO",
    logger: str = "gated_training",
    fields: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    time: str | None = None,
) -> str:
    """One line of the schema (no newline)."""
    ctx = dict(_context.get() or {})
    ctx.update({k: str(v) for k, v in (context or {}).items() if v is not None and k in CONTEXT_KEYS})
    record = {
        "time": time or _now(),
        "severity": severity if severity in SEVERITIES else "DEFAULT",
        "message": _clean(str(message)),
        "event": _clean(str(event)),
        "logger": _clean(str(logger)),
        **{key: _clean(ctx.get(key, "")) for key in CONTEXT_KEYS},
        "fields": _clean(dict(fields or {})),
    }
    return json.dumps(record, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def event(
    name: str,
    message: str,
    *,
    severity: str = "INFO",
    stream: TextIO | None = None,
    model: str | None = None,
    version: str | None = None,
    **fields: Any,
) -> None:
    """Write one event: its message alone in text mode, one JSON line in JSON mode (to ``stream``, stdout by
    default; warnings and errors keep the stream the caller chose)."""
    out = stream if stream is not None else sys.stdout
    if log_format() == "json":
        line = render(name, message, severity=severity, fields=fields, context={"model": model, "version": version})
    else:
        line = str(message)
    try:
        out.write(line + "\n")
        out.flush()
    except (OSError, ValueError):  # a closed or broken stream never fails the work that logs
        pass


class LineStream:
    """A text stream for libraries that print instead of logging (MLflow's ``eprint``): each line written
    becomes one event of ``event`` (JSON mode) or passes through to stderr (text mode)."""

    def __init__(self, event: str, logger: str) -> None:
        self.event, self.logger, self._pending = event, logger, ""

    def write(self, text: str) -> int:
        self._pending += text
        *lines, self._pending = self._pending.split("\n")
        for line in lines:
            if line.strip():
                _write_line(self.event, line, self.logger)
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _write_line(name: str, message: str, logger: str) -> None:
    if log_format() == "json":
        sys.stderr.write(render(name, message, logger=logger) + "\n")
    else:
        sys.stderr.write(message + "\n")
    sys.stderr.flush()


class JsonFormatter(logging.Formatter):
    """Python ``logging`` records in the schema: the record's ``event`` and ``fields`` extras if given."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        fields = dict(getattr(record, "fields", None) or {})
        return render(
            str(getattr(record, "event", "") or "log"),
            message,
            severity=_LEVEL_SEVERITY.get(record.levelno, "INFO" if record.levelno < logging.WARNING else "ERROR"),
            logger=record.name,
            fields=fields,
            time=_dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        )


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """A handler that looks ``sys.stdout`` up at every record (pytest and the CLI swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stdout
        super().emit(record)


def configure() -> None:
    """In JSON mode, route every ``logging`` record through :class:`JsonFormatter` on stdout (idempotent;
    replaces the root's handlers, so kfp's ``basicConfig`` that runs later finds one and adds none)."""
    global _configured
    if log_format() != "json":
        return
    # MLflow gives its loggers a handler of their own (text) unless told not to: then they reach the root's.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    # Progress bars redraw one line with carriage returns: no reader can parse them. MLflow's artifact bars
    # and any other tqdm bar (tqdm reads TQDM_* as its defaults) stay off in JSON mode.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")
    root = logging.getLogger()
    if _configured and any(isinstance(h, _JsonHandler) for h in root.handlers):
        return
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_JsonHandler())
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    _configured = True


def keep_for_crash() -> None:
    """Keep the current context for the traceback line of an error leaving its block: by the time it ends
    the process, the block (a step) has unbound its context, and the line still names the step."""
    global _crash_context
    _crash_context = dict(_context.get() or {})


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    """An error that ends the process: one event whose message holds the traceback (Cloud Logging's Error
    Reporting reads a stack trace from ``message``), instead of Python's many lines on stderr."""
    import traceback

    text = "".join(traceback.format_exception(kind, value, tb))
    line = render("process.crashed", text, severity="CRITICAL", logger="python", context=_crash_context)
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def install_startup_hook(site_packages: str) -> str:
    """Write :data:`PTH_NAME` into ``site_packages``: every interpreter of that environment applies
    :func:`configure` at start when ``GATED_TRAINING_LOG_FORMAT=json`` (and imports nothing otherwise)."""
    path = os.path.join(site_packages, PTH_NAME)
    with open(path, "w") as handle:
        handle.write(PTH_LINE)
    return path


if __name__ == "__main__":  # python -m gated_training.logs --install-hook
    import sysconfig

    if sys.argv[1:] != ["--install-hook"]:
        sys.exit("usage: python -m gated_training.logs --install-hook")
    print(install_startup_hook(sysconfig.get_paths()["purelib"]))
