"""Refusing near-topic questions: how the extractive threshold trades answers for refusals.

``benchmarks/calibrate.py`` sets ``extractive_threshold`` against off-topic negatives (quiz
questions asked of the sample articles), which any threshold near 0.4 refuses.  The harder case
is a question on a covered topic whose answer is not in the articles.  RealTime QA gives such
questions for free: ask each question *as of 90 days before its date*, and keep it as a negative
when no article published by then contains an accepted answer (the news it asks about had not
happened yet, while the topic usually had coverage).  Positives: the same questions asked as of
their own date whose best-ranked sentence holds an accepted answer (what a higher threshold
would lose).  Both use the app's default retrieval (top_k 8) and the extractive writer's
evidence model: a question's score is the probability of the best sentence allowed to answer
(``ExtractiveWriter.choose`` with no probability floor: on topic, holding the asked-for kind,
the speaker speaking), 0 when the rules refuse it.  The table shows what each floor would do.

    python benchmarks/refusal.py --set dev     # needs benchmarks/out/dev (see retrieval.py)
"""

from __future__ import annotations

import argparse
import re
import sys
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.retrieval import indexed_set, normalise

SHIFT = timedelta(days=90)
CUTS = (0.0, 0.05, 0.10, 0.15, 0.20, 0.25, 0.30, 0.40)


def main() -> None:
    from assistant.answer import Assistant
    from assistant.settings import get_settings

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default="dev", choices=["dev-small", "dev"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    args = parser.parse_args()
    found = indexed_set(args.set, args.out)
    if found is None:
        return
    data_dir, questions = found
    bot = Assistant(get_settings(data_dir=data_dir, llm="extractive"))
    articles = [(a.published, normalise(f"{a.title} {bot.store.get_article(a.id).text}"))
                for a in bot.store.list_articles()]

    from dataclasses import replace

    from assistant.question import analyse

    writer = bot.extractive
    writer.weights = replace(writer.weights, floor=0.0)

    def best(question: str, as_of: date) -> tuple[float, str]:
        answer = bot.ask(question, as_of=as_of)
        found = writer.choose(analyse(question), answer.sources)
        if not found:
            return 0.0, ""
        return found[0].probability, answer.sources[found[0].i].sentences[found[0].j].text

    def holds(text: str, answers: list[str]) -> bool:
        return any(re.search(rf"\b{re.escape(a)}\b", text) for a in map(normalise, answers) if a)

    pos, neg = [], []
    for q in questions:
        if not q.get("as_of"):
            continue
        day = date.fromisoformat(q["as_of"])
        score, sentence = best(q["question"], day)
        if holds(normalise(sentence), q["answers"]):
            pos.append(score)
        earlier = day - SHIFT
        if not any(p and p <= earlier and holds(text, q["answers"]) for p, text in articles):
            neg.append(best(q["question"], earlier)[0])
    print(f"{args.set}: {len(pos)} questions answered correctly by the best sentence; "
          f"{len(neg)} near-topic questions with no answer in the articles of 90 days before\n")
    print(f"shipped floor: {bot.settings.writer.extractive_threshold:.2f} relevance x "
          f"{writer.weights.topic} topic gate; probability floor in assistant/extractive.py\n")
    print("| probability floor | correct answers kept | near-topic questions refused | balanced accuracy |")
    print("|---|---:|---:|---:|")
    for cut in CUTS:
        kept = sum(s >= cut for s in pos) / len(pos)
        refused = sum(s < cut for s in neg) / len(neg)
        print(f"| {cut:.2f} | {kept:.3f} | {refused:.3f} | {(kept + refused) / 2:.3f} |")


if __name__ == "__main__":
    main()
