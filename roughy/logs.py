"""Logging for every process: one format for every line (`ROUGHY_LOG_FORMAT=text|json`).

One configuration (`config`) is applied twice, to the same effect: by `setup` when a command
starts, and by uvicorn (`uvicorn_config`, its `log_config`), which would otherwise install its
own handlers and formats. uvicorn's, kopf's and every library's loggers have no handler of their
own: their records reach the root handler, so in json mode every line a process writes to
stderr is one JSON object. (stdout carries only what is said to a person: `roughy serve`'s
first-start banner with the new API key, never a log line; see `announce` for the rest.)

docs/observability.md lists the fields of a JSON line.
"""

from __future__ import annotations

import json
import logging
import logging.config
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

#: What every LogRecord has: not copied as extra fields.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
#: Extras that are not data: uvicorn's ANSI-coloured copy of its message, kopf's internals.
_DROPPED = frozenset({"color_message", "settings", "k8s_skip"})
#: Extras renamed on the way out: kopf's reference to the Kubernetes object a line is about.
_RENAMED = {"k8s_ref": "object"}

#: Loggers quieted below WARNING: a line per request that a roughy line already covers, or a
#: probe every few seconds (the API logs its own probes at DEBUG for the same reason).
QUIET = (
    "uvicorn.access",  # the edge middleware logs every request, with its request id
    "aiohttp.access",  # kopf's liveness endpoint, called by the kubelet
)


#: The id of the request being answered, set by the API's edge (`roughy.api.middleware`) for the
#: whole request: every line logged while answering it carries it as `request_id` (a render's
#: "created" line too), not only the request's own line.
REQUEST_ID: ContextVar[str | None] = ContextVar("roughy_request_id", default=None)


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id") and (request_id := REQUEST_ID.get()) is not None:
            record.request_id = request_id
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log pipelines (ROUGHY_LOG_FORMAT=json).

    `time` (UTC, milliseconds), `level`, `logger` and `message` always; then every `extra`
    field the call passed (a request's `request_id`, `status`, ...; a render's `render_id`,
    `state`, ...), values that are not JSON as their `str`; `exception` with the traceback.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key in _RECORD_ATTRIBUTES or key in _DROPPED or key.startswith("_"):
                continue
            entry.setdefault(_RENAMED.get(key, key), value)  # the four above win over an extra
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def config(fmt: str) -> dict[str, Any]:
    """The `logging.config.dictConfig` of a roughy process: one stderr handler on the root."""
    formatter: dict[str, Any] = {"()": JsonFormatter} if fmt == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,  # loggers made at import time keep logging
        "formatters": {"roughy": formatter},
        "filters": {"request_id": {"()": RequestIdFilter}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "roughy",
                "filters": ["request_id"],
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {
            # uvicorn's start and stop lines ("Uvicorn running on ...", "Shutting down") and its
            # errors, through the root handler; no handler of its own.
            "uvicorn": {"level": "INFO", "handlers": [], "propagate": True},
            **{name: {"level": "WARNING"} for name in QUIET},
        },
    }


def setup(fmt: str) -> None:
    logging.config.dictConfig(config(fmt))


def uvicorn_config(fmt: str) -> dict[str, Any]:
    """uvicorn's `log_config`: the same configuration as `setup`, so that uvicorn keeps it
    (without one, uvicorn installs its own handlers and text format). Pass no `log_level` with
    it: that would override the levels set here."""
    return config(fmt)


def announce(fmt: str, message: str) -> None:
    """A line for the person who started the process ("serving on ..."): printed as it is in
    text mode, an INFO record of the `roughy` logger in json mode (a pipeline reads only JSON)."""
    if fmt == "json":
        logging.getLogger("roughy").info(message)
    else:
        print(message, flush=True)
