"""Import a library without the optional dependencies it would load for features newsdesk never
uses: ``import_without("bm25s", ("scipy", ...))``.

Libraries like NLTK and bm25s try heavy packages (scikit-learn, SciPy, pandas, tqdm) at import
time and carry on without them when the import fails.  Those packages are hidden while the
library loads, when no one has loaded them yet, and visible again right after, so code that
does need them still imports them normally.  Seconds of start-up for a sentence splitter or a
tokenizer otherwise.
"""

from __future__ import annotations

import copy
import importlib
import sys
import threading
from collections import deque
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from pydantic import BaseModel

_IMPORTING = threading.RLock()


def import_without(module: str, optional: Sequence[str]) -> ModuleType:
    """``module``, imported while the ``optional`` packages look absent (if not yet loaded).

    Threads may ask at once (the two keyword levels are searched on two): one imports, the
    others wait, rather than take the module half-initialized from ``sys.modules``."""
    with _IMPORTING:
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
# syntax highlighting, pygments), optional to httpx, comes along with the HTTP client.  And
# jsonschema (with attrs, referencing and rpds: 0.05-0.07 s of CPU), which chromadb imports to
# check the configuration of its own embedding functions, never used by newsdesk (it passes
# its vectors): a stand-in loads it when chromadb first validates one.  PyYAML likewise, read
# only by a Chroma server's token authentication.
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
    checking.override = checking.overrides = _marked_override  # type: ignore[assignment,attr-defined]
    stubs = {}
    if _OTLP_EXPORTER not in sys.modules:
        stubs[_OTLP_EXPORTER] = ModuleType(_OTLP_EXPORTER)
        stubs[_OTLP_EXPORTER].OTLPSpanExporter = _NoOtlpExporter  # type: ignore[attr-defined]
    if "jsonschema" not in sys.modules:
        stubs["jsonschema"] = _jsonschema_on_first_use()
    if "yaml" not in sys.modules:  # read only by the server-side token authentication
        stubs["yaml"] = _on_first_use("yaml")[0]
    sys.modules.update(stubs)
    from pydantic_settings import BaseSettings

    settings_init = BaseSettings.__init__
    BaseSettings.__init__ = _chroma_settings_read_once(settings_init)  # type: ignore[method-assign]
    try:
        for module in modules:
            import_without(module, _CHROMADB_OPTIONAL)
    finally:
        BaseSettings.__init__ = settings_init  # type: ignore[method-assign]
        (overrides.override, overrides.overrides,
         checking.override, checking.overrides) = saved  # type: ignore[assignment,attr-defined]
        for name, stub in stubs.items():
            if sys.modules.get(name) is stub:
                del sys.modules[name]


def _chroma_settings_read_once(settings_init: Callable[..., None]) -> Callable[..., None]:
    """``BaseSettings.__init__`` for while chromadb imports: chromadb builds seven default
    ``Settings()`` as it loads (default arguments), each reading the environment and ``.env``
    for its 120 fields (7-8 ms each, about a sixth of chromadb's import).  The first is built
    as usual; the others of the same class are validated from its values, which are what
    reading the same environment a moment later gives."""
    first: dict[type, Any] = {}

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        if args or kwargs or not cls.__module__.startswith("chromadb") or cls not in first:
            settings_init(self, *args, **kwargs)
            if not args and not kwargs:
                first.setdefault(cls, self)
            return
        made = first[cls]
        values = {name: copy.deepcopy(getattr(made, name)) for name in made.model_fields_set}
        BaseModel.__init__(self, **values)

    return __init__


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


class _SchemaError(ValueError):
    """What the jsonschema stand-in raises for an invalid instance: the message and path of
    jsonschema's ``ValidationError`` (the only parts chromadb reads)."""

    def __init__(self, message: str, path: Sequence[object] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.path = deque(path)


def _on_first_use(name: str) -> tuple[ModuleType, Callable[[], ModuleType]]:
    """A stand-in for module ``name`` that loads the real one when any of its attributes is
    first read (for modules a library imports but uses only in functions newsdesk never
    calls), and the function that loads it."""
    stub = ModuleType(name)

    def real() -> ModuleType:
        if sys.modules.get(name) is stub:  # asked for during the library's own import
            del sys.modules[name]
        return importlib.import_module(name)

    def attribute(attr: str) -> object:
        if attr.startswith("__"):  # the import system asking what the module is (a package?)
            raise AttributeError(attr)
        return getattr(real(), attr)

    stub.__getattr__ = attribute  # type: ignore[method-assign]
    return stub, real


def _jsonschema_on_first_use() -> ModuleType:
    """A stand-in for the ``jsonschema`` module while chromadb imports it: chromadb binds its
    ``ValidationError`` at import, so the stand-in has its own (``_SchemaError``), which its
    ``validate`` raises for jsonschema's; ``validate`` and any other name load jsonschema."""
    stub, real = _on_first_use("jsonschema")

    def validate(instance: object, schema: object, *args: object, **kwargs: object) -> None:
        jsonschema = real()
        try:
            jsonschema.validate(instance, schema, *args, **kwargs)
        except jsonschema.ValidationError as exc:
            raise _SchemaError(exc.message, exc.path) from exc

    stub.ValidationError = _SchemaError  # type: ignore[attr-defined]
    stub.validate = validate  # type: ignore[attr-defined]
    return stub
