"""What the citation policy removes from real answers: each draft beside its checked answer.

``assistant.citations.enforce`` removes every sentence without a valid, supporting citation and
refuses an answer left with none.  This script asks every question of a RealTime QA set (as of
its own date, the app's default retrieval and writer) and compares, per question, the writer's
draft (the streamed deltas) with the checked ``Answer``:

- answers changed by the check, sentences removed (by kind), answers turned into refusals;
- answer containment (an accepted answer inside the text, ``evals.metrics.normalise``) of the
  draft and of the checked answer: what the policy costs in correct answers.

The peer is the draft itself, measured in the same run: the previous policy kept every sentence
of it and refused only when no marker named a source.

    python benchmarks/enforcement.py --set dev      # builds or reuses benchmarks/out/dev/newsdesk
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "realtimeqa"
sys.path.insert(0, str(REPO))

from evals.metrics import normalise


def holds(text: str, answers: list[str]) -> bool:
    """An accepted answer appears in ``text`` as whole words."""
    text = normalise(text)
    return any(re.search(rf"\b{re.escape(a)}\b", text) for a in map(normalise, answers) if a)


def main() -> None:
    from assistant.answer import Assistant
    from assistant.citations import is_refusal, parse
    from assistant.settings import get_settings
    from index import ingest

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="dev", choices=["dev-small", "dev"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    parser.add_argument("--llm", default="extractive", help="the writer (default: extractive)")
    args = parser.parse_args()
    folder = DATA / args.set
    if not (folder / "questions.jsonl").exists():
        print(f"{folder} is absent: nothing to run (internal data lives in ../shared).")
        return
    settings = get_settings(data_dir=args.out / args.set / "newsdesk", llm=args.llm)
    started = time.perf_counter()
    report = ingest([folder / "corpus.jsonl"], config=settings)
    print(f"index: {len(report.added)} added, {len(report.unchanged)} unchanged in "
          f"{time.perf_counter() - started:.0f}s", file=sys.stderr)
    questions = [json.loads(line) for line in (folder / "questions.jsonl").read_text().splitlines()
                 if line.strip()]
    bot = Assistant(settings)

    counts: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    started = time.perf_counter()
    for q in questions:
        as_of = date.fromisoformat(q["as_of"]) if q.get("as_of") else None
        events = list(bot.stream(q["question"], as_of=as_of))
        draft = "".join(e.text or "" for e in events if e.type == "delta").strip()
        answer = events[-1].answer
        assert answer is not None
        counts["questions"] += 1
        draft_answers = not is_refusal(draft) and any(p.numbers for p in parse(draft))
        counts["draft answered"] += draft_answers
        counts["checked answered"] += not answer.refused
        counts["changed"] += draft_answers and answer.text != draft
        counts["refused by the check"] += draft_answers and answer.refused
        counts["draft sentences"] += len(parse(draft)) if draft_answers else 0
        kinds.update(d.kind for d in answer.dropped)
        counts["draft correct"] += draft_answers and holds(draft, q["answers"])
        counts["checked correct"] += not answer.refused and holds(answer.text, q["answers"])
    seconds = time.perf_counter() - started

    print(f"set {args.set}, writer {bot.writer.name}: {counts['questions']} questions in "
          f"{seconds:.0f}s")
    for key in ("draft answered", "checked answered", "changed", "refused by the check",
                "draft sentences", "draft correct", "checked correct"):
        print(f"  {key}: {counts[key]}")
    print(f"  sentences removed: {sum(kinds.values())} ({dict(kinds) or 'none'})")


if __name__ == "__main__":
    main()
