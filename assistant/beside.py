"""The sentence beside the chosen one that names what the question asks for.

A news sentence often repeats the question's words while naming the answer only by reference:
"Team owner Arte Moreno announced Tuesday that he has 'initiated a formal process' that could
result in selling the franchise" answers "Which MLB team's owner ...?" with "the franchise";
the name is in the sentence before ("The Los Angeles Angels may soon be up for sale.").  When
the extractive writer's best sentence holds no span of the asked-for kind, ``beside`` finds
the sentence next to it, in the same retrieved passage, that does: first the one before (what
"the team", "he" or "the company" usually refer back to), then the one after.  The writer
quotes it right after the best sentence and takes the short answer from it.

Only the two neighbours are read (entities for two sentences, cached like every other), so the
rule costs a few milliseconds; its effect on RealTime QA is in benchmarks/RESULTS.md.
"""

from __future__ import annotations

from assistant import question as q_analysis
from assistant.models import Source
from assistant.question import Question

Spans = list[tuple[int, int]]


def beside(question: Question, source: Source, j: int) -> tuple[int, Spans] | None:
    """(index, spans) of the sentence before or after sentence ``j`` of ``source`` holding a
    span of the kind ``question`` asks for that it does not name; None when neither does, or
    when the question asks for no kind or for what someone said."""
    if question.kind is None or question.speaker:
        return None
    near = [k for k in (j - 1, j + 1) if 0 <= k < len(source.sentences)]
    texts = [source.sentences[k].text for k in near]
    ents: list[tuple[tuple[int, int, str], ...]] = [()] * len(texts)
    if question.needs_entities and texts:
        from assistant.entities import entities

        ents = entities(texts)
    for k, text, found in zip(near, texts, ents, strict=True):
        sentence = source.sentences[k]
        spans = q_analysis.spans(question, text, sentence_start=sentence.start,
                                 dates=sentence.dates, ents=found)
        if spans:
            return k, spans
    return None
