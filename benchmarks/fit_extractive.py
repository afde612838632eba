"""Fit the extractive writer's evidence model on RealTime QA dev-small; compare old and new on dev.

1. **Sources, once.**  Each question of a set is retrieved as the eval harness does (hybrid,
   20 chunks, the question's ``as_of``) and, for the near-topic negatives of
   ``benchmarks/refusal.py``, again as of 90 days earlier, keeping only those where no article
   published by then holds an accepted answer.  The sources are cached as JSON in ``--cache``
   (default /tmp/newsdesk-fit), keyed by set, so later runs skip retrieval.
2. **Fit** (``--fit``, dev-small only): every candidate sentence (``ExtractiveWriter.candidates``
   with no topic gate) gives its features (relevance, holds an asked-for span, position, source
   rank, new names, the question's own words) and a label (holds an accepted answer).  The
   weights relative to relevance's are those, on a coarse grid, whose best sentence holds an
   answer most often (ties: the smallest weights); a logistic regression of that one score
   (Newton's method) then calibrates it into a probability.  The topic gate (a ratio of
   ``extractive_threshold``), the probability floor and the kinds refused without a span are
   chosen by replaying the choice: the most correct answers with false refusals at most 0.08,
   then (within one question of the best) the most near-topic refusals.  The result is printed
   as a ``Weights(...)`` to paste into ``assistant/extractive.py``; ``Weights.beside``,
   ``beside_adds`` and ``nearby`` (how far in the chosen sentence's article to look for one
   naming the asked kind when it names none, whether that sentence replaces the last quote
   or is added; the kinds refused when neither names one) by replaying the writer
   (``fit_beside``; alone, from today's weights: ``--beside``).  Before that, the
   shortlist (``assistant.shortlist.FirstStage``: which sentences are embedded at all) is
   fitted as a logistic model of "holds an accepted answer" over every sentence of the
   sources; after it, how many sentences an answer quotes (up to ``QUOTE``, each with at
   least ``second_sentence_ratio`` × the first's probability): the largest ratio within one
   question of the most correct answers.
3. **Compare** (default): the writer of git ref ``--old`` (default: ``OLD_REF``, main before the
   sentence beside the chosen one and voted short answers) and today's, over the same cached sources in one run: answer correctness
   (accepted answer in the answer text, and in its first quote alone), short answer exact, false refusals, near-topic
   refusals, generation p50/p95 (each writer with its own sentence-embedding cache).

    python benchmarks/fit_extractive.py --set dev-small --fit   # needs benchmarks/out/dev-small
    python benchmarks/fit_extractive.py --set dev               # needs benchmarks/out/dev
    python benchmarks/fit_extractive.py --set dev-small --beside   # the sentence beside, replayed
    python benchmarks/fit_extractive.py --set dev --variants --quoted in-place   # and: added
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import time
import types
from dataclasses import replace
from datetime import date, timedelta
from itertools import product
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.retrieval import indexed_set, normalise
from evals.metrics import contains_answer

SHIFT = timedelta(days=90)
OLD_REF = "9fd2705"
"""The old writer: main before the sentence beside the chosen one, voted short answers and
``Weights.nearby`` (before that: 5a68301, main before quoting up to three sentences, with a
``second_sentence_ratio`` of 0.85)."""
OLD_SECOND_RATIO = 0.7
"""``second_sentence_ratio`` as the old writer was configured (the settings' default then)."""
TOP_K = 20


def cached_sources(args: argparse.Namespace) -> tuple[Any, list[dict]]:
    """(an Assistant over the set's index, rows with sources), retrieving only what is not cached."""
    from assistant.answer import Assistant
    from assistant.models import Source
    from assistant.retrieve import Filters, retrieve
    from assistant.settings import get_settings

    file = args.cache / f"{args.set}.json"
    index = args.out / args.set / "newsdesk" / "catalog.sqlite3"
    bot: Any
    if file.exists() and not index.exists():  # the sources are cached: no index needed
        from index.embeddings import get_embedder

        settings = get_settings(llm="extractive", top_k=TOP_K)
        bot = types.SimpleNamespace(settings=settings, embedder=get_embedder(settings))
    else:
        found = indexed_set(args.set, args.out)
        if found is None:
            sys.exit(1)
        data_dir, questions = found
        bot = Assistant(get_settings(data_dir=data_dir, llm="extractive", top_k=TOP_K))
    if file.exists():
        rows = json.loads(file.read_text())
    else:
        articles = [(a.published, normalise(f"{a.title} {bot.store.get_article(a.id).text}"))
                    for a in bot.store.list_articles()]

        def sources(question: str, as_of: date | None) -> list[dict]:
            hits = retrieve(question, Filters(as_of=as_of), settings=bot.settings,
                            store=bot.store, embedder=bot.embedder)
            return [s.model_dump(mode="json") for s in bot._sources(hits)]

        rows = []
        for q in questions:
            day = date.fromisoformat(q["as_of"]) if q.get("as_of") else None
            earlier = day - SHIFT if day else None
            negative = earlier is not None and not any(
                p and p <= earlier and contains_answer(text, q["answers"]) for p, text in articles)
            rows.append({"q": q, "sources": sources(q["question"], day),
                         "earlier": sources(q["question"], earlier) if negative else None})
        args.cache.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps(rows))
    for row in rows:
        row["sources"] = [Source.model_validate(s) for s in row["sources"]]
        if row["earlier"] is not None:
            row["earlier"] = [Source.model_validate(s) for s in row["earlier"]]
    return bot, rows


def logistic(x: Any, y: Any, l2: float = 1e-3, steps: int = 50) -> Any:
    """Weights (bias first) of an L2-regularised logistic regression, by Newton's method."""
    import numpy as np

    x = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(x.shape[1])
    penalty = l2 * np.diag([0.0] + [1.0] * (x.shape[1] - 1))
    for _ in range(steps):
        p = 1 / (1 + np.exp(-x @ w))
        grad = x.T @ (p - y) / len(y) + penalty @ w
        hessian = (x.T * (p * (1 - p))) @ x / len(y) + penalty
        step = np.linalg.solve(hessian, grad)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    return w


FEATURES = ("relevance", "span", "position", "rank", "novelty", "focus")


def fit_first_stage(rows: list[dict]) -> Any:
    """The shortlist weights (``assistant.shortlist.FirstStage``): a logistic regression of
    "holds an accepted answer" over every sentence of the sources, on the first-stage
    features; printed with the share of questions whose shortlist of 8/16/24 keeps an
    answer-bearing sentence, against the word-overlap score it replaces."""
    import numpy as np

    from assistant import shortlist
    from assistant.question import analyse

    table = []
    for row in rows:
        found = shortlist.features(analyse(row["q"]["question"]), row["sources"])
        labels = [bool(contains_answer(row["sources"][i].sentences[j].text, row["q"]["answers"]))
                  for i, j in found.cells]
        table.append((found, labels))
    x = np.array([f for found, _ in table for f in found.features])
    y = np.array([float(h) for _, labels in table for h in labels])
    weights = logistic(x, y)
    fitted = shortlist.FirstStage(**{name: round(float(w), 3) for name, w in
                                     zip(shortlist.FEATURES, weights[1:], strict=True)})

    def kept(stage: Any, limit: int) -> float:
        held = [(found, labels) for found, labels in table if any(labels)]
        return sum(any(labels[n] for n in shortlist.shortlist(found, limit, stage))
                   for found, labels in held) / max(1, len(held))

    for name, stage in (("word overlap", shortlist.FirstStage()), ("fitted", fitted)):
        print(f"shortlist, {name}: keeps an answer-bearing sentence for "
              + ", ".join(f"{kept(stage, k):.3f} at {k}" for k in (8, 12, 16, 20, 24))
              + " of the questions whose sources hold one")
    print(f"first stage: {fitted}")
    return fitted


def fit(bot: Any, rows: list[dict]) -> Any:
    """Fit the weights, then the gates, on ``rows``; print and return the ``Weights``.

    The weights (relative to relevance's) are those whose best sentence holds an accepted
    answer most often; a logistic regression of that one score then calibrates it into a
    probability (Platt scaling).  Gates are chosen over the same candidates, replayed.
    """
    import numpy as np

    from assistant import shortlist
    from assistant.extractive import ExtractiveWriter, Weights
    from assistant.question import analyse

    fitted_first = fit_first_stage(rows)
    base = bot.settings.writer.extractive_threshold
    tried = {}
    for name, stage in (("word overlap", shortlist.FirstStage()), ("fitted", fitted_first)):
        result = evaluate(ExtractiveWriter(bot.embedder, threshold=base, first_stage=stage),
                          rows, timed=False)
        tried[name] = (result["correct"], stage)
        print(f"the writer on the {name} shortlist: {fmt(result)}")
    # the fitted shortlist only if it answers more than one more question correctly
    better = tried["fitted"][0] > tried["word overlap"][0] + 1 / len(rows) + 1e-9
    first = tried["fitted" if better else "word overlap"][1]
    print(f"shortlist kept: {'fitted' if better else 'word overlap'}")
    loose = ExtractiveWriter(bot.embedder, threshold=0.0, first_stage=first,
                             weights=Weights(strict=frozenset(), event=frozenset()))
    event = Weights().event

    def allowed(question: Any, sources: list, answers: list[str]) -> list:
        """(features, holds an answer) of the candidates the rules let answer: the passage
        shares a word of the question, and for the event kinds the sentence repeats the
        question's event (the speaker check is skipped: RealTime QA has no "what did X say")."""
        out = []
        for c in loose.candidates(question, sources):
            if not c.context or (question.kind in event and not c.covers):
                continue
            text = sources[c.i].sentences[c.j].text
            out.append(([c.relevance, float(c.holds), c.position, c.rank, c.novelty, c.focus],
                        bool(answers) and bool(contains_answer(text, answers))))
        return out

    table = []  # per question: kind, allowed candidates
    for row in rows:
        question = analyse(row["q"]["question"])
        table.append((question.kind, allowed(question, row["sources"], row["q"]["answers"])))

    def top1(w: Any) -> float:
        hits = 0
        for _, found in table:
            if found:
                hits += max(found, key=lambda f: float(np.dot(w, f[0])))[1]
        return hits / len(table)

    grid = product((0.0, 0.05, 0.1, 0.2), (0.0, 0.05, 0.1), (0.0, 0.1, 0.2, 0.4), (0.0, 0.1, 0.2),
                   (0.0, 0.1, 0.2, 0.4))
    scored = [(top1(np.array([1.0, *w])), -sum(w), w) for w in grid]
    best_hit, _, ratios = max(scored)
    print(f"best sentence holds an answer for {best_hit:.3f} of questions with relative weights "
          f"{dict(zip(FEATURES, (1.0, *ratios), strict=True))} (relevance alone: "
          f"{top1(np.array([1.0, 0, 0, 0, 0, 0])):.3f})")
    w_rel = np.array([1.0, *ratios])
    x = np.array([[float(np.dot(w_rel, f))] for _, found in table for f, _ in found])
    y = np.array([float(h) for _, found in table for _, h in found])
    bias, scale = logistic(x, y)
    relevance, span, position, rank, novelty, focus = (round(float(scale * r), 3) for r in w_rel)
    fitted = Weights(bias=round(float(bias), 3), relevance=relevance, span=span,
                     position=position, rank=rank, novelty=novelty, focus=focus)
    print(f"calibrated over {len(y)} candidate sentences ({int(y.sum())} hold an answer): {fitted}")

    negatives = []
    for row in rows:
        if row["earlier"] is not None:
            question = analyse(row["q"]["question"])
            negatives.append((question.kind, allowed(question, row["earlier"], [])))

    def replay(found: list, kind: str | None, topic: float, floor: float, strict: Any) -> Any:
        allowed = [(f, h) for f, h in found if f[0] >= base * topic and (kind not in strict or f[1])]
        if not allowed:
            return None
        f, h = max(allowed, key=lambda t: float(np.dot(w_rel, t[0])))
        p = 1 / (1 + np.exp(-(bias + scale * float(np.dot(w_rel, f)))))
        return None if p < floor else h

    kinds = ("date", "number", "person", "org", "place", "thing")
    stricts = [frozenset(), frozenset({"number"}), frozenset({"number", "person"}),
               frozenset({"date", "number"}), frozenset(kinds[:5]), frozenset(kinds)]
    results = []
    for topic, floor, strict in product((0.7, 0.8, 0.85, 0.9, 0.95, 1.0),
                                        (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3), stricts):
        answers = [replay(found, kind, topic, floor, strict) for kind, found in table]
        correct = sum(a is True for a in answers) / len(table)
        refused = sum(a is None for a in answers) / len(table)
        near = (sum(replay(f, k, topic, floor, strict) is None for k, f in negatives)
                / max(1, len(negatives)))
        results.append((correct, refused, near, topic, floor, strict))
    ok = [r for r in results if r[1] <= 0.08]
    top = max(r[0] for r in ok)  # within one question of the best, refuse the most near-topic
    close = [r for r in ok if r[0] >= top - 1 / len(rows) - 1e-9]
    correct, refused, near, topic, floor, strict = max(
        close, key=lambda r: (r[2], r[0], len(r[5]), -r[4]))  # then the rule for more kinds
    chosen = replace(fitted, topic=topic, floor=floor, strict=strict, event=event, recent=None,
                     nearby=frozenset())
    print(f"gates: best sentence correct {correct:.3f}, refused {refused:.3f}, near-topic refused "
          f"{near:.3f} (of {len(negatives)})\nchosen: {chosen}")
    chosen = fit_beside(bot, rows, chosen, first)
    quoting = []  # how many sentences an answer quotes: up to QUOTE, each ratio × the best's
    for ratio in (0.85, 0.7, 0.5, 0.3):
        writer = ExtractiveWriter(bot.embedder, threshold=base, weights=chosen, first_stage=first,
                                  max_sentences=QUOTE, second_ratio=ratio)
        result = evaluate(writer, rows, timed=False)
        quoting.append((result["correct"], ratio))
        print(f"quoting up to {QUOTE} sentences of at least {ratio} × the best's probability: "
              f"{fmt(result)}")
    top = max(c for c, _ in quoting)  # the fewest quotes within one question of the best
    ratio = max(r for c, r in quoting if c >= top - 1 / len(rows) - 1e-9)
    print(f"chosen: up to {QUOTE} sentences, second_sentence_ratio {ratio}")
    windows = []  # the recency rule: how old an article may be for a "this week" question
    for days in (None, 30, 14, 7):
        writer = ExtractiveWriter(bot.embedder, threshold=base, first_stage=first,
                                  weights=replace(chosen, recent=days), max_sentences=QUOTE,
                                  second_ratio=ratio)
        result = evaluate(writer, rows, timed=False)
        windows.append((result, days))
        print(f"recent questions answered from articles at most {days} days old: {fmt(result)}")
    ok_windows = [(r, d) for r, d in windows if r["false_refusals"] <= 0.08]
    top = max(r["correct"] for r, _ in ok_windows)  # within one question of the best, most near-topic
    _, days = max(((r, d) for r, d in ok_windows if r["correct"] >= top - 1 / len(rows) - 1e-9),
                  key=lambda t: (t[0]["near_topic_refused"], t[0]["correct"], -(t[1] or 999)))
    chosen = replace(chosen, recent=days)
    print(f"chosen: {chosen}")
    return chosen


QUOTE = 3
"""Most sentences an extractive answer quotes (``ExtractiveWriter.max_sentences``)."""


def fit_beside(bot: Any, rows: list[dict], weights: Any, first: Any, *,
               second_ratio: float = 0.85) -> Any:
    """``Weights.beside``, ``Weights.beside_adds`` and ``Weights.nearby``: whether, and how far
    (``assistant.beside.REACHES``: the neighbours, the passage, the article, its lead, its most
    probable sentence), to look for a sentence naming the asked-for kind when the chosen one
    names none; whether it takes the last further quote's place or is quoted in addition; and
    (then) which kinds beyond ``strict`` are refused when neither an allowed sentence nor the
    sentence found for it names one.  Each is replayed with the writer and adopted only when,
    with false refusals at most 0.08, it answers more than one more question correctly or
    refuses more near-topic negatives (as the shortlist is); the nearby kinds are taken one by
    one for each reach by the same rule against that reach without them; among several
    settings beating the writer without the rule, the most correct, then the most near-topic
    refusals, then the nearest reach, replacing before adding."""
    from assistant.beside import REACHES
    from assistant.extractive import ExtractiveWriter

    base = bot.settings.writer.extractive_threshold

    def run(w: Any) -> dict[str, Any]:
        return evaluate(ExtractiveWriter(bot.embedder, threshold=base, first_stage=first,
                                         weights=w, second_ratio=second_ratio), rows, timed=False)

    def better(new: dict[str, Any], old: dict[str, Any]) -> bool:
        return new["false_refusals"] <= 0.08 and (
            new["correct"] > old["correct"] + 1 / len(rows) + 1e-9
            or (new["near_topic_refused"] > old["near_topic_refused"]
                and new["correct"] >= old["correct"] - 1e-9))

    def label(w: Any) -> str:
        return (f"reach {w.beside}, {'added' if w.beside_adds else 'in place of the last'}, "
                f"nearby {sorted(w.nearby)}")

    off = run(replace(weights, beside=None, beside_adds=False, nearby=frozenset()))
    print(f"the sentence beside, off: {fmt(off)}")
    finals: list[tuple[dict[str, Any], int, Any]] = []  # each reach, in place or added, with the nearby kinds it adopts greedily
    for reach, adds in product(REACHES, (False, True)):
        tried = replace(weights, beside=reach, beside_adds=adds, nearby=frozenset())
        best = run(tried)
        print(f"the sentence beside, {label(tried)}: {fmt(best)}", flush=True)
        for kind in ("org", "place", "thing", "person"):
            if kind in weights.strict:
                continue
            candidate = replace(tried, nearby=tried.nearby | {kind})
            result = run(candidate)
            print(f"  refused without a span within reach, {label(candidate)}: {fmt(result)}",
                  flush=True)
            if better(result, best):
                tried, best = candidate, result
        finals.append((best, -len(finals), tried))
    won = [t for t in finals if better(t[0], off)]
    if not won:
        print("chosen: beside off (so no nearby kinds)")
        return replace(weights, beside=None, beside_adds=False, nearby=frozenset())
    _, _, chosen = max(won, key=lambda t: (t[0]["correct"], t[0]["near_topic_refused"], t[1]))
    print(f"chosen: {label(chosen)}")
    return chosen


def args_set(rows: list[dict]) -> str:
    return f"{len(rows)} questions"


def evaluate(writer: Any, rows: list[dict], *, timed: bool = True) -> dict[str, Any]:
    """Correctness (of the whole answer, and of its first quoted sentence with its lead alone),
    short answer exact, false and near-topic refusals, generation latency.  Timed, each writer
    starts with no sentence's entities read (the cache is per process: a writer run after
    another would otherwise find them all read), as it has its own embedding cache."""
    from assistant import entities
    from assistant.citations import is_refusal

    if timed:
        entities._cache.clear()
    correct = first = exact = refused = 0
    latencies = []
    for row in rows:
        started = time.perf_counter()
        text, short = written(writer, row["q"]["question"], row["sources"], asked_on(row))
        latencies.append(time.perf_counter() - started)
        answers = row["q"]["answers"]
        refused += is_refusal(text)
        correct += not is_refusal(text) and bool(contains_answer(text, answers))
        first += not is_refusal(text) and bool(contains_answer(text.split("]")[0], answers))
        exact += short is not None and any(normalise(short.text) == normalise(a) for a in answers)
    negatives = [r for r in rows if r["earlier"] is not None]
    near = sum(is_refusal(written(writer, r["q"]["question"], r["earlier"],
                                  asked_on(r, earlier=True))[0]) for r in negatives)
    n = len(rows)
    out = {"questions": n, "correct": correct / n, "first_correct": first / n,
           "short_exact": exact / n,
           "false_refusals": refused / n, "near_topic": len(negatives),
           "near_topic_refused": near / len(negatives) if negatives else 0.0}
    if timed:
        ordered = sorted(latencies)
        out["p50_ms"] = 1000 * statistics.median(ordered)
        out["p95_ms"] = 1000 * ordered[int(0.95 * (len(ordered) - 1))]
    return out


def asked_on(row: dict, *, earlier: bool = False) -> date | None:
    """The day a row's question is asked on (its near-topic negative: 90 days earlier)."""
    day = date.fromisoformat(row["q"]["as_of"]) if row["q"].get("as_of") else None
    return day - SHIFT if day and earlier else day


def written(writer: Any, question: str, sources: list, as_of: date | None) -> tuple[str, Any]:
    """(answer text, short answer or None) as the writer's ``write`` gives them."""
    events = list(writer.write(question, sources, as_of=as_of))
    return "".join(e.text for e in events), getattr(events[-1], "short_answer", None)


def fmt(r: dict[str, Any]) -> str:
    text = (f"correct {r['correct']:.3f} (first quote {r['first_correct']:.3f}), short exact {r['short_exact']:.3f}, false refusals "
            f"{r['false_refusals']:.3f}, near-topic refused {r['near_topic_refused']:.3f} "
            f"(of {r['near_topic']})")
    if "p50_ms" in r:
        text += f", generation p50 {r['p50_ms']:.0f} ms, p95 {r['p95_ms']:.0f} ms"
    return text


def old_writer(ref: str, bot: Any) -> Any:
    """The extractive writer as committed at ``ref``, loaded from git, with the app's settings."""
    if Path(ref).is_file():  # a saved copy of the old module
        source = Path(ref).read_text()
    else:
        source = subprocess.run(["git", "show", f"{ref}:assistant/extractive.py"], cwd=REPO,
                                check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("old_extractive")
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, f"{ref}:assistant/extractive.py", "exec"), module.__dict__)  # noqa: S102
    w = bot.settings.writer
    return module.ExtractiveWriter(bot.embedder.with_own_cache(), threshold=w.extractive_threshold,
                                   source_prior=w.source_prior, second_ratio=OLD_SECOND_RATIO)


def sources_parser(description: str | None, default_set: str) -> argparse.ArgumentParser:
    """A parser with the options ``cached_sources`` reads: ``--set``, ``--out``, ``--cache``."""
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", default=default_set, choices=["dev-small", "dev"])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/newsdesk-fit"))
    return parser


QUOTED = {"in-place": (False,), "added": (True,), "both": (False, True)}
"""``--quoted``: which ``Weights.beside_adds`` the ``--variants`` replay (so that a run over dev
can be split between two holds of the heavy-job lock)."""


def main() -> None:
    parser = sources_parser(__doc__, "dev")
    parser.add_argument("--old", default=OLD_REF,
                        help="git ref of the old writer, or a saved copy of its extractive.py")
    parser.add_argument("--fit", action="store_true", help="fit the weights on this set")
    parser.add_argument("--cache-only", action="store_true", help="only retrieve and cache")
    parser.add_argument("--diagnose", action="store_true",
                        help="count where the new writer loses answers (refusals by rule, "
                             "candidates embedded)")
    parser.add_argument("--beside", action="store_true",
                        help="only replay fit_beside from today's weights and the app's "
                             "second_sentence_ratio (each reach, in place or added)")
    parser.add_argument("--variants", action="store_true",
                        help="also the new writer with each rule the fit left off")
    parser.add_argument("--quoted", choices=sorted(QUOTED), default="both",
                        help="with --variants: the sentence beside in place of the last quote, "
                             "added to the quotes, or both")
    parser.add_argument("--ask", type=int, default=0, metavar="N",
                        help="also time the whole ask, warm, over the first N questions")
    args = parser.parse_args()
    bot, rows = cached_sources(args)
    if args.cache_only:
        return
    if args.fit:
        fit(bot, rows)
        return
    if args.diagnose:
        diagnose(bot, rows)
        return
    if args.beside:
        from assistant.extractive import FITTED
        from assistant.shortlist import FITTED as FIRST

        fit_beside(bot, rows, FITTED, FIRST,
                   second_ratio=bot.settings.writer.second_sentence_ratio)
        return
    from assistant.llm import LLMChoice, extractive_writer
    from assistant.settings import get_settings

    new = extractive_writer(LLMChoice("extractive"), bot.settings, bot.embedder.with_own_cache())
    print(f"{args.set}: {len(rows)} questions, hybrid, {TOP_K} sources, each question's as_of\n")
    print(f"new (working tree): {fmt(evaluate(new, rows))}", flush=True)
    old = old_writer(args.old, bot)
    print(f"old ({args.old}): {fmt(evaluate(old, rows))}", flush=True)
    if args.variants:  # the rules the fit left off, each on top of today's writer
        from dataclasses import replace as with_

        from assistant.beside import REACHES

        for reach, adds in product(REACHES, QUOTED[args.quoted]):
            variant = extractive_writer(LLMChoice("extractive"), bot.settings,
                                        bot.embedder.with_own_cache())
            variant.weights = with_(variant.weights, beside=reach, beside_adds=adds)
            print(f"new + the sentence beside, reach {reach}, "
                  f"{'added' if adds else 'in place of the last'}: {fmt(evaluate(variant, rows))}",
                  flush=True)
    if args.ask:
        print(f"\nwhole `ask`, app defaults (top_k {get_settings().retrieval.top_k}), warm process, "
              f"first {args.ask} questions of the set, each as of its date:")
        for name, writer in (("old", old_writer(args.old, bot)), ("new", None)):
            print(f"  {name}: {ask_latency(bot, rows[: args.ask], writer)}")


def diagnose(bot: Any, rows: list[dict]) -> None:
    """Where the new writer loses answers: whether the sources hold one, whether the embedded
    candidates do, which rule refused (the first that leaves no candidate), and where the
    first answer-bearing sentence ranks among those allowed to answer, with the shortlist
    and with every sentence embedded."""
    from collections import Counter

    from assistant.citations import is_refusal
    from assistant.llm import LLMChoice, extractive_writer
    from assistant.question import analyse

    w = extractive_writer(LLMChoice("extractive"), bot.settings, bot.embedder.with_own_cache())
    count: Counter[str] = Counter()
    for row in rows:
        text, answers, sources = row["q"]["question"], row["q"]["answers"], row["sources"]
        hit = {(i, j) for i, s in enumerate(sources) for j, x in enumerate(s.sentences)
               if contains_answer(x.text, answers)}
        count["questions"] += 1
        count["answer in the sources"] += bool(hit)
        count["answer among the embedded candidates"] += bool(
            hit & {(i, j) for _, i, j in w.rank(text, sources, limit=w.limit)})
        answer = written(w, text, sources, asked_on(row))[0]
        count["correct"] += not is_refusal(answer) and bool(contains_answer(answer, answers))
        if not is_refusal(answer):
            continue
        question = analyse(text)
        left = w.candidates(question, sources)
        why = "no on-topic sentence"
        if left:
            left, why = [c for c in left if c.context], "the passage shares no question word"
        if left and question.kind in w.weights.event:
            left, why = [c for c in left if c.covers], "a date without the event"
        if left and question.kind in w.weights.strict:
            left, why = [c for c in left if c.spans], f"no {question.kind} span"
        if left and question.recent and asked_on(row) and w.weights.recent is not None:
            left = [c for c in left if (sources[c.i].published is None or
                                        (asked_on(row) - sources[c.i].published).days
                                        <= w.weights.recent)]
            why = "no recent article for a recent question"
        if left:
            why = "below the floor"
        count[f"refused: {why}"] += 1
        count[f"refused: {why}, answer in the sources"] += bool(hit)
    every = copy.copy(w)  # the same writer with every sentence of the sources embedded
    every.limit = every.first = 10**6
    for name, writer in (("shortlist", w), ("every sentence", every)):
        for row in rows:
            text, answers, sources = row["q"]["question"], row["q"]["answers"], row["sources"]
            hit = {(i, j) for i, s in enumerate(sources) for j, x in enumerate(s.sentences)
                   if contains_answer(x.text, answers)}
            if not hit:
                continue
            found = writer.choose(analyse(text), sources, as_of=asked_on(row))
            ranks = [n for n, c in enumerate(found) if (c.i, c.j) in hit]
            where = ("not allowed or not a candidate" if not ranks else "1st" if ranks[0] == 0
                     else "2nd-3rd" if ranks[0] < 3 else "4th-5th" if ranks[0] < 5 else "lower")
            count[f"{name}: first answer-bearing sentence {where}"] += 1
    for key, value in sorted(count.items()):
        print(f"{key}: {value}")


def ask_latency(bot: Any, rows: list[dict], writer: Any) -> str:
    """p50/p95 of the whole ``Assistant.ask`` (retrieval, writing, citations) with app defaults."""
    from assistant.answer import Assistant
    from assistant.settings import get_settings

    settings = bot.settings.updated(top_k=get_settings().retrieval.top_k)
    app = Assistant(settings, store=bot.store, embedder=bot.embedder.with_own_cache(),
                    writer=writer)
    app.ask("What happened this week?")  # warm: models loaded, as in a running server
    took, stages = [], []
    for row in rows:
        as_of = date.fromisoformat(row["q"]["as_of"]) if row["q"].get("as_of") else None
        started = time.perf_counter()
        answer = app.ask(row["q"]["question"], as_of=as_of)
        took.append(time.perf_counter() - started)
        stages.append(answer.timings)
    took.sort()
    median = {k: 1000 * statistics.median(t.get(k, 0.0) for t in stages)
              for k in ("retrieval", "generation", "citations")}
    return (f"p50 {1000 * statistics.median(took):.0f} ms, p95 "
            f"{1000 * took[int(0.95 * (len(took) - 1))]:.0f} ms (stage p50s: "
            + ", ".join(f"{k} {v:.0f} ms" for k, v in median.items()) + ")")


if __name__ == "__main__":
    main()
