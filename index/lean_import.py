"""Import a library without the optional dependencies it would load for features newsdesk never
uses: ``import_without("bm25s", ("scipy", ...))``.

Libraries like NLTK and bm25s try heavy packages (scikit-learn, SciPy, pandas, tqdm) at import
time and carry on without them when the import fails.  Those packages are hidden while the
library loads, when no one has loaded them yet, and visible again right after, so code that
does need them still imports them normally.  Seconds of start-up for a sentence splitter or a
tokenizer otherwise.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Sequence
from types import ModuleType


def import_without(module: str, optional: Sequence[str]) -> ModuleType:
    """``module``, imported while the ``optional`` packages look absent (if not yet loaded)."""
    if module in sys.modules:
        return sys.modules[module]
    hidden = [name for name in optional if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        return importlib.import_module(module)
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


# What chromadb loads for nothing newsdesk uses (benchmarks/RESULTS.md, start-up): the
# ``overrides`` package checks the signature of every ``@override`` method as chromadb's classes
# are defined (about a third of its import; the checks only catch chromadb's own coding
# mistakes), and its telemetry module imports the OpenTelemetry gRPC exporter (gRPC and
# protobuf) for a collector endpoint newsdesk never sets.  httpx's command line (click, rich's
# syntax highlighting, pygments), optional to httpx, comes along with the HTTP client.
_OTLP_EXPORTER = "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"
_CHROMADB_OPTIONAL = ("httpx._main",)
_CHROMADB_CLIENTS = {False: "chromadb.api.rust", True: "chromadb.api.fastapi"}  # loaded lazily
_CHROMADB_LOCK = threading.Lock()  # a thread that asks during another's import waits for it


def import_chromadb(*, server: bool = False) -> ModuleType:
    """``chromadb`` with the client code an embedded store (or with ``server``, a Chroma
    server) loads on first use, imported without ``overrides``' signature checks, httpx's
    command line and the OpenTelemetry gRPC exporter (``chroma_otel_collection_endpoint`` stays
    unusable: newsdesk never sets it).  Each is put back right after, for any other code that
    uses them (only ``httpx.main``, the command line's entry point, stays the stub saying to
    install it).  Threads may call it at once (``Store.open_vectors_in_background``): one
    imports, the others wait for it to finish."""
    wanted = ("chromadb", _CHROMADB_CLIENTS[server])
    with _CHROMADB_LOCK:
        if any(name not in sys.modules for name in wanted):
            _import_lean(wanted)
        return sys.modules["chromadb"]


def _import_lean(modules: Sequence[str]) -> None:
    import overrides

    checking = sys.modules["overrides.overrides"]  # the module (the package's name is a function)
    saved = (overrides.override, overrides.overrides, checking.override, checking.overrides)
    overrides.override = overrides.overrides = _marked_override  # type: ignore[assignment]
    checking.override = checking.overrides = _marked_override  # type: ignore[assignment]
    stub = None
    if _OTLP_EXPORTER not in sys.modules:
        stub = ModuleType(_OTLP_EXPORTER)
        stub.OTLPSpanExporter = _NoOtlpExporter  # type: ignore[attr-defined]
        sys.modules[_OTLP_EXPORTER] = stub
    try:
        for module in modules:
            import_without(module, _CHROMADB_OPTIONAL)
    finally:
        (overrides.override, overrides.overrides,
         checking.override, checking.overrides) = saved  # type: ignore[assignment]
        if stub is not None and sys.modules.get(_OTLP_EXPORTER) is stub:
            del sys.modules[_OTLP_EXPORTER]


def _marked_override(method=None, *, check_signature=True, check_at_runtime=False):
    """``overrides.override`` without its checks: it marks the method, as the original does."""
    if method is None:
        return _marked_override
    method.__override__ = True
    return method


class _NoOtlpExporter:
    """Stands in for the OpenTelemetry gRPC span exporter chromadb imports but newsdesk never
    configures."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError(
            "newsdesk loads chromadb without its OpenTelemetry exporter; "
            "unset chroma_otel_collection_endpoint"
        )
