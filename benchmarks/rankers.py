"""Second-stage rankers for the extractive writer, measured against its fitted evidence model.

On RealTime QA the writer's first sentence holds an accepted answer for about half of
dev-small's questions, while an answer-bearing sentence sits among its candidates for about
four in five.  This script asks whether signals the writer already computes choose that
sentence better.  Over the same candidates (the 24 sentences sharing most words with the
question, embedded and scored as ``ExtractiveWriter.candidates`` does, those whose passage
shares a question word), for each question of the set:

1. **today**: the fitted ``Weights`` (what the writer ranks by);
2. **learned rankers**: logistic regression and gradient-boosted trees (scikit-learn) of
   "holds an accepted answer" over every feature below, 2-fold cross-validated by question
   (three random splits; a question's candidates are never in both halves);
3. **answer-span voting**: the candidate answers (spans of the asked-for kind) are scored by
   the summed probability of the candidates naming them (counted per sentence or once per
   article, over the best 5 or all), and the most probable sentence naming the winner is put
   first;
4. **headline agreement**: a bonus (0.5 or 1.0 on the logit) for a sentence naming a span its
   article's title names too.

Features: relevance, holds a span of the asked kind, position, source rank, new names, the
question's own words, the vote of its best span (share of the question's top vote), the
number of its spans, whether it is itself a question, its neighbours' relevance, headline
agreement.  Printed: top-1 and top-3 (the share of questions whose first, or first three,
sentences hold an accepted answer).

    python benchmarks/rankers.py --set dev-small   # sources cached by fit_extractive.py
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.fit_extractive import cached_sources, sources_parser
from evals.metrics import contains_answer, normalise

CANDIDATES = 24


def table(bot: Any, rows: list[dict]) -> list[dict]:
    """Per question: the candidates' features (list of lists), labels, spans and sources."""
    from assistant.extractive import ExtractiveWriter, Weights
    from assistant.question import analyse

    loose = ExtractiveWriter(bot.embedder, threshold=0.0,
                             weights=Weights(strict=frozenset(), event=frozenset(),
                                             nearby=frozenset()))
    out = []
    for row in rows:
        question, sources = analyse(row["q"]["question"]), row["sources"]
        found = [c for c in loose.candidates(question, sources, limit=CANDIDATES) if c.context]
        texts = [sources[c.i].sentences[c.j].text for c in found]
        keys = [{normalise(t[a:b]) for a, b in c.spans} - {""} for c, t in zip(found, texts, strict=True)]
        votes = _votes(found, keys, per_article=True)
        top = max(votes.values(), default=0.0) or 1.0
        relevance = {(c.i, c.j): c.relevance for c in found}
        features = []
        for c, text, mine in zip(found, texts, keys, strict=True):
            title = f" {normalise(sources[c.i].title)} "
            features.append([
                c.relevance, float(c.holds), c.position, c.rank, c.novelty, c.focus,
                max((votes[k] for k in mine), default=0.0) / top, min(len(mine), 5) / 5,
                float(text.rstrip(" \"”’'").endswith("?")),
                max(relevance.get((c.i, c.j + d), 0.0) for d in (-1, 1)),
                float(any(f" {k} " in title for k in mine)),
            ])
        labels = [bool(contains_answer(t, row["q"]["answers"])) for t in texts]
        out.append({"found": found, "features": features, "labels": labels, "keys": keys})
    return out


def _votes(found: list, keys: list[set[str]], *, per_article: bool, best: int | None = None
           ) -> dict[str, float]:
    """Each candidate answer's summed probability over the candidates naming it."""
    by: dict[str, dict[Any, float]] = defaultdict(dict)
    for c, mine in list(zip(found, keys, strict=True))[:best]:
        for k in mine:
            where = c.i if per_article else (c.i, c.j)
            by[k][where] = max(by[k].get(where, 0.0), c.probability)
    return {k: sum(v.values()) for k, v in by.items()}


def hits(questions: list[dict], order: Any) -> tuple[float, float]:
    """Top-1 and top-3 over the questions, for ``order(q) -> candidate indexes best first``."""
    one = three = 0
    for q in questions:
        ranked = order(q) if q["found"] else []
        one += bool(ranked) and q["labels"][ranked[0]]
        three += any(q["labels"][n] for n in ranked[:3])
    return one / len(questions), three / len(questions)


def by_score(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda n: -scores[n])


def main() -> None:
    args = sources_parser(__doc__, "dev-small").parse_args()
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    bot, rows = cached_sources(args)
    questions = table(bot, rows)
    print(f"{args.set}: {len(questions)} questions, the {CANDIDATES} candidates sharing most words "
          f"with each; an answer-bearing one for "
          f"{sum(any(q['labels']) for q in questions) / len(questions):.3f}\n")
    results = {"today's weights": hits(questions, lambda q: by_score([c.probability for c in q["found"]]))}
    models = {"logistic regression": lambda: LogisticRegression(C=1.0, max_iter=3000),
              "gradient-boosted trees": lambda: HistGradientBoostingClassifier(
                  max_depth=3, learning_rate=0.05, max_iter=150, min_samples_leaf=20)}
    position = {id(q): n for n, q in enumerate(questions)}
    for name, make in models.items():
        runs = []
        for seed in range(3):
            half = np.random.RandomState(seed).permutation(len(questions)) % 2
            scored: dict[int, list[float]] = {}
            for fold in (0, 1):
                train = [q for n, q in enumerate(questions) if half[n] != fold and q["found"]]
                x = np.array([f for q in train for f in q["features"]])
                y = np.array([lab for q in train for lab in q["labels"]])
                model = make().fit(x, y)
                for n, q in enumerate(questions):
                    if half[n] == fold and q["found"]:
                        scored[n] = list(model.predict_proba(np.array(q["features"]))[:, 1])
            runs.append(hits(questions, lambda q, s=scored, at=position: by_score(s[at[id(q)]])))
        results[f"{name} (2-fold CV, mean of 3 splits)"] = (
            sum(r[0] for r in runs) / 3, sum(r[1] for r in runs) / 3)
    for per_article in (False, True):
        for best in (5, None):
            def voted(q: dict, per_article: bool = per_article, best: int | None = best) -> list[int]:
                base = by_score([c.probability for c in q["found"]])
                votes = _votes(q["found"], q["keys"], per_article=per_article, best=best)
                if not votes:
                    return base
                winner = max(votes, key=lambda k: votes[k])
                first = next(n for n in base if winner in q["keys"][n])
                return [first] + [n for n in base if n != first]
            label = (f"answer-span voting, {'once per article' if per_article else 'per sentence'}, "
                     f"over {'the best 5' if best else 'all'}")
            results[label] = hits(questions, voted)
    for bonus in (0.5, 1.0):
        results[f"headline agreement, +{bonus} on the logit"] = hits(questions, lambda q, b=bonus: by_score(
            [np.log(c.probability / (1 - c.probability)) + b * f[-1]
             for c, f in zip(q["found"], q["features"], strict=True)]))
    print("| ranker | top-1 | top-3 |\n|---|---:|---:|")
    for name, (one, three) in results.items():
        print(f"| {name} | {one:.3f} | {three:.3f} |")


if __name__ == "__main__":
    main()
