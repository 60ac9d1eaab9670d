"""taupy: the Python client for Tau, the bitemporal interval time-series database.

>>> import taupy
>>> with taupy.connect("127.0.0.1", 7070) as db:          # doctest: +SKIP
...     db.create_database("sensors"); db.use("sensors")
...     db.create_lens("temp", float)
...     db.append("temp", [(0, 3600, 18.5), (3600, 7200, 21.0)])
...     db.at("temp", 1800)
18.5

``taupy.connect`` gives a blocking :class:`Client`; ``taupy.aio.connect`` an asyncio
:class:`taupy.aio.AsyncClient` with the same methods as coroutines. See docs/PYTHON.md.
"""

from . import aio
from .client import Client, connect, make_ssl_context
from .errors import *  # noqa: F401,F403
from .errors import __all__ as _errors_all
from .protocol import LENS_TYPES, REDUCE_FUNCTIONS, Layer, Piece, RangeResult, Reply
from .values import Null, NullType, Value, datetime_to_ms, ms_to_datetime

__version__ = "0.1.0"

__all__ = [
    "aio",
    "connect",
    "Client",
    "make_ssl_context",
    "Reply",
    "Piece",
    "Layer",
    "RangeResult",
    "LENS_TYPES",
    "REDUCE_FUNCTIONS",
    "Null",
    "NullType",
    "Value",
    "datetime_to_ms",
    "ms_to_datetime",
    "__version__",
] + list(_errors_all)
