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
