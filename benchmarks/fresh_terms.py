"""A fresh process's keyword searches, phase by phase: what a question costs whose terms no
earlier question of the process asked.

Opens a scale archive (``benchmarks/scale.py``) in this process, with an empty keyword cache,
and searches both levels (chunks and articles, 100 best each) for ``--questions`` questions of
the archive's generator, one after the other, from ``--offset`` on.  Prints one JSON object:
the seconds in all, p50 / p95 per question, and the seconds spent in each phase (the catalog
read, decoding, BM25 shares, adding up, MaxScore in all) over all questions.  ``--hits FILE``
writes every search's hits, so two versions of the code can be shown to find the same.
PYTHONPATH (or the copy of the script run) decides the code:

    python benchmarks/fresh_terms.py /work/scale/a100000-s7-g1-v2 --questions 60 --offset 300
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks import scale
from benchmarks import scale_corpus as corpus
from benchmarks.scale_probe import percentiles

PHASES = {  # (module, owner, name): the phase it is counted in, where the code has it
    ("keywords", "KeywordCache", "postings"): "catalog read",
    ("keywords", None, "decode_rows"): "decoding",
    ("keywords", None, "_shares"): "shares",
    ("keywords", "_Postings", "share"): "shares",  # before shares were computed when asked
    ("keywords", "KeywordCache", "sum_by_document"): "adding up",
    ("maxscore", None, "candidates"): "maxscore in all",
}


def timed_phases(spent: dict[str, float]) -> None:
    """Wrap each phase's function, where it exists, to add its seconds to ``spent``."""
    from index import keywords, maxscore

    modules = {"keywords": keywords, "maxscore": maxscore}
    for (module, owner_name, name), phase in PHASES.items():
        owner = modules[module] if owner_name is None else getattr(modules[module], owner_name)
        call = getattr(owner, name, None)
        if call is None:
            continue

        def timed(*args: Any, _call: Any = call, _phase: str = phase, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return _call(*args, **kwargs)
            finally:
                spent[_phase] += time.perf_counter() - began

        setattr(owner, name, timed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", type=Path, help="an archive folder of scale.py")
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--offset", type=int, default=0, help="the first question's number")
    parser.add_argument("--hits", type=Path, help="write every search's hits here (JSON)")
    args = parser.parse_args()
    built, _, store = scale.open_archive(args.archive, serving=True)
    index = store.keyword_index()
    index.chunks.search("warm up the facets", 1)  # the per-document arrays read first
    spent: dict[str, float] = defaultdict(float)
    timed_phases(spent)
    asked = corpus.questions(built["seed"], args.offset + args.questions, built["size"])
    seconds, hits = [], []
    for q in asked[args.offset :]:
        began = time.perf_counter()
        hits += [index.chunks.search(q.text, 100), index.articles.search(q.text, 100)]
        seconds.append(time.perf_counter() - began)
    if args.hits:
        args.hits.write_text(json.dumps(hits))
    print(json.dumps({
        "archive": args.archive.name, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "questions": args.questions, "offset": args.offset, "total_s": round(sum(seconds), 2),
        **percentiles(seconds), "phases_s": {k: round(v, 3) for k, v in spent.items()},
    }))


if __name__ == "__main__":
    main()
