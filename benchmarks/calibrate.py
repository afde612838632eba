"""Calibrate the two thresholds newsdesk answers with; prints the figures and the chosen values.

1. ``extractive_threshold``: the least relevance (ExtractiveGenerator.rank) of the best source
   sentence for newsdesk to answer rather than refuse.  Positives: answerable questions whose
   best-ranked sentence contains an accepted answer (the shipped sample questions over the
   sample articles, and RealTime QA dev-small over its pool).  Negatives: questions the index
   cannot answer (the shipped unanswerable ones, and dev-small questions asked of the sample
   articles when no accepted answer string occurs anywhere in them).
2. ``support_threshold``: the least similarity between an answer sentence and its cited
   sentence for the citation to count as supporting.  Claims: the quiz's own explanation
   (``evidence_text``) of each dev-small question, which is never shown to the system under
   test.  Positive: the retrieved sentence that contains the answer and is most similar to
   the claim; negative: the most similar retrieved sentence without the answer.

The value chosen for each maximises balanced accuracy (mean of the two classes' accuracies).

    python benchmarks/calibrate.py        # needs benchmarks/out/dev-small (see retrieval.py)
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "realtimeqa" / "dev-small"
sys.path.insert(0, str(REPO))

from benchmarks.retrieval import normalise


def balanced(pos: list[float], neg: list[float], cut: float) -> float:
    """Balanced accuracy of ``score >= cut`` as the positive class."""
    return (sum(p >= cut for p in pos) / len(pos) + sum(n < cut for n in neg) / len(neg)) / 2


def best_threshold(pos: list[float], neg: list[float]) -> tuple[float, float]:
    """The cut (score >= cut is positive) with the highest balanced accuracy, and that accuracy."""
    best = (0.0, 0.0)
    for cut in sorted(set(pos + neg)):
        acc = balanced(pos, neg, cut)
        if acc > best[1]:
            best = (cut, acc)
    return best


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> None:
    from assistant.answer import Assistant
    from assistant.settings import get_settings
    from index import ingest

    if not (DATA / "questions.jsonl").exists():
        print("../shared/data/realtimeqa/dev-small is absent; nothing to calibrate on")
        return
    rt_questions = load(DATA / "questions.jsonl")
    samples = load(REPO / "index" / "samples" / "articles.jsonl")
    sample_text = normalise(" ".join(a["title"] + " " + a["text"] for a in samples))

    tmp = Path(tempfile.mkdtemp())
    sample_settings = get_settings(data_dir=tmp / "samples", llm="extractive")
    ingest([REPO / "index" / "samples"], config=sample_settings)
    sample_bot = Assistant(sample_settings)
    rt_settings = get_settings(data_dir=REPO / "benchmarks" / "out" / "dev-small" / "newsdesk",
                               llm="extractive")
    ingest([DATA / "corpus.jsonl"], config=rt_settings)
    rt_bot = Assistant(rt_settings)

    def best(bot: Assistant, question: str) -> tuple[float, str, list]:  # type: ignore[type-arg]
        answer = bot.ask(question)
        ranked = bot.extractive.rank(question, answer.sources)
        if not ranked:
            return 0.0, "", answer.sources
        score, i, j = ranked[0]
        return score, answer.sources[i].sentences[j].text, answer.sources

    pos, neg = [], []
    for q in load(REPO / "evals" / "questions.jsonl"):
        score, sentence, _ = best(sample_bot, q["question"])
        if not q.get("answerable", True):
            neg.append(score)
        elif any(normalise(a) in normalise(sentence) for a in q["answers"]):
            pos.append(score)
    claims = []
    for q in rt_questions:
        score, sentence, sources = best(rt_bot, q["question"])
        if any(normalise(a) in normalise(sentence) for a in q["answers"]):
            pos.append(score)
        if not any(normalise(a) in sample_text for a in q["answers"]):
            neg.append(best(sample_bot, q["question"])[0])
        if q.get("evidence_text"):
            claims.append((q, sources))
    print("answerable, lowest 8:", [round(x, 3) for x in sorted(pos)[:8]])
    print("unanswerable, highest 8:", [round(x, 3) for x in sorted(neg)[-8:]])
    cut, acc = best_threshold(pos, neg)
    print(f"extractive_threshold: {len(pos)} answerable, {len(neg)} unanswerable; "
          f"best cut {cut:.3f} (balanced accuracy {acc:.3f})")
    shipped = rt_settings.writer.extractive_threshold
    print(f"  at the shipped {shipped:.2f}: balanced accuracy {balanced(pos, neg, shipped):.3f}")

    support_pos, support_neg, support_other = [], [], []
    for n, (q, sources) in enumerate(claims):
        sentences = [s.text for src in sources for s in src.sentences]
        has = [any(normalise(a) in normalise(s) for a in q["answers"]) for s in sentences]
        if not any(has) or all(has):
            continue
        scores = rt_bot.support([q["evidence_text"]], sentences)[0]
        support_pos.append(max(sc for sc, h in zip(scores, has, strict=True) if h))
        support_neg.append(max(sc for sc, h in zip(scores, has, strict=True) if not h))
        _, other_sources = claims[(n + 1) % len(claims)]
        other = [s.text for src in other_sources[:3] for s in src.sentences]
        support_other.append(max(rt_bot.support([q["evidence_text"]], other)[0]))
    cut2, acc2 = best_threshold(support_pos, support_neg)
    print(f"support_threshold vs same-source sentences without the answer: {len(support_pos)} "
          f"claims; best cut {cut2:.3f} (balanced accuracy {acc2:.3f})")
    cut3, acc3 = best_threshold(support_pos, support_other)
    print(f"support_threshold vs another question's sources: best cut {cut3:.3f} "
          f"(balanced accuracy {acc3:.3f})")
    print("supporting, lowest 8:", [round(x, 3) for x in sorted(support_pos)[:8]])
    print("other question, highest 8:", [round(x, 3) for x in sorted(support_other)[-8:]])


if __name__ == "__main__":
    main()
