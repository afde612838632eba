"""Postings as the keyword index stores them: one (level, term, block) row's document offsets and
term frequencies packed into two byte strings, and a batch of documents counted into such rows.

``encode`` / ``decode`` are the stored form of one row; ``count_postings`` turns a batch's
tokens into every (level, term, document) posting, sorted and cut into rows (``Counted``);
``appended`` is a stored row followed by the batch's postings of that row, as written back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

BLOCK = 8192
"""Documents per block (at most 65,536: offsets are stored as uint16)."""


def encode(offsets: Any, tfs: Any) -> tuple[int, bytes, bytes]:
    """One block's postings as stored: (count, uint16 offsets, uint16 or uint32 frequencies)."""
    wide = len(tfs) and int(tfs.max()) > 0xFFFF
    return (len(offsets), offsets.astype("<u2").tobytes(),
            tfs.astype("<u4" if wide else "<u2").tobytes())


def decode(block: int, n: int, docs: bytes, tfs: bytes) -> tuple[Any, Any]:
    """A stored block's postings: (document ids as int64, term frequencies)."""
    import numpy as np

    offsets = np.frombuffer(docs, dtype="<u2").astype(np.int64) + block * BLOCK
    return offsets, np.frombuffer(tfs, dtype="<u4" if len(tfs) == 4 * n else "<u2")


def decode_rows(rows: Sequence[tuple[int, int, bytes, bytes]]) -> tuple[Any, Any]:
    """Stored rows (block, count, docs, tfs) of one term, in block order, decoded at once:
    (document ids as int32, term frequencies as stored, uint16 unless one row is wide)."""
    import numpy as np

    if not rows:
        return np.zeros(0, np.int32), np.zeros(0, np.uint16)
    counts = np.array([r[1] for r in rows], dtype=np.int64)
    docs = np.frombuffer(b"".join(r[2] for r in rows), dtype="<u2").astype(np.int32)
    docs += np.repeat(np.array([r[0] for r in rows], dtype=np.int32) * BLOCK, counts)
    if all(len(r[3]) == 2 * r[1] for r in rows):
        return docs, np.frombuffer(b"".join(r[3] for r in rows), dtype="<u2")
    return docs, np.concatenate([decode(*r)[1].astype(np.uint32) for r in rows])


@dataclass
class Counted:
    """A batch's postings, one per (level, term, document), sorted so: ``level``, ``term``
    (vocabulary ids), ``doc`` (document ids) and ``tf`` per posting; ``starts`` and ``ends``
    bound each stored row (a level, term and block); ``offsets`` and ``narrow`` are the
    postings packed as stored (uint16 offsets in the block, uint16 frequencies)."""

    level: Any
    term: Any
    doc: Any
    tf: Any
    starts: Any
    ends: Any
    offsets: bytes
    narrow: bytes

    @property
    def size(self) -> int:
        return len(self.doc)

    def rows(self) -> Iterator[tuple[int, int, int, int, int]]:
        """(level, term, block, start, end) of each row, in order."""
        at = self.starts
        return zip(self.level[at].tolist(), self.term[at].tolist(),
                   (self.doc[at] // BLOCK).tolist(), at.tolist(), self.ends.tolist(), strict=True)

    def wide(self) -> set[int]:
        """The starts of the rows with a frequency above uint16's range."""
        import numpy as np

        over = np.maximum.reduceat(self.tf, self.starts) > 0xFFFF
        return set(self.starts[over].tolist())

    def frequencies(self) -> Iterator[tuple[int, int, int]]:
        """(level, term, documents holding it) for each term of the batch."""
        import numpy as np

        at = np.flatnonzero(np.diff(self.level * (1 << 32) + self.term, prepend=-1))
        counts = np.diff(np.append(at, self.size))
        return zip(self.level[at].tolist(), self.term[at].tolist(), counts.tolist(), strict=True)


def count_postings(
    levels: Sequence[int], ids: list[list[int]], lengths: list[int], n_terms: int, first: int
) -> Counted:
    """Every (level, term, document) of the batch with its frequency, sorted and cut into rows
    (``Counted``): each document's level, token ids and length, documents numbered from
    ``first``."""
    import numpy as np

    n_docs, n_terms = len(levels), max(n_terms, 1)
    local = np.repeat(np.arange(n_docs, dtype=np.int64), lengths)
    stems = np.fromiter(chain.from_iterable(ids), np.int64, len(local))
    level_of = np.array(levels, dtype=np.int64)
    # one key per token, ordered by (level, term, document): equal keys are one posting
    keys, tf = np.unique((level_of[local] * n_terms + stems) * n_docs + local, return_counts=True)
    group, doc = np.divmod(keys, n_docs)
    level, term = np.divmod(group, n_terms)
    doc += first
    block = doc // BLOCK
    cut = np.flatnonzero((group[1:] != group[:-1]) | (block[1:] != block[:-1])) + 1
    starts, ends = np.append([0], cut), np.append(cut, [len(keys)])
    return Counted(level, term, doc, tf, starts, ends,
                   (doc - block * BLOCK).astype("<u2").tobytes(), tf.astype("<u2").tobytes())


def appended(
    old: tuple[int, bytes, bytes] | None, new: Counted, start: int, end: int, dead: Any,
    wide: bool,
) -> tuple[int, bytes, bytes]:
    """A row's (count, docs, tfs) as stored: ``old`` (the stored row, if any) followed by the
    batch's postings ``start:end`` (``wide``: one of their frequencies exceeds uint16's range);
    removed documents (``dead``, offsets in the block) of the stored row dropped."""
    import numpy as np

    count, docs, tfs = end - start, new.offsets[2 * start : 2 * end], new.narrow[2 * start : 2 * end]
    if old is None and not wide:
        return count, docs, tfs
    if old is not None and not wide and not dead.size and len(old[2]) == 2 * old[0]:
        return old[0] + count, old[1] + docs, old[2] + tfs
    offsets = np.frombuffer(docs, dtype="<u2").astype(np.int64)
    freqs = new.tf[start:end]
    if old is not None:
        old_offsets, old_tfs = decode(0, *old)
        keep = ~np.isin(old_offsets, dead)
        offsets = np.concatenate([old_offsets[keep], offsets])
        freqs = np.concatenate([old_tfs[keep].astype(np.int64), freqs])
    return encode(offsets, freqs)
