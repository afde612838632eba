"""Synthetic news archives for ``benchmarks/scale.py``: deterministic articles and questions,
and a labelled stand-in for the embedding model's document vectors.

Every word here is the project's own: sentences are recombined from the templates below, their
slots filled from small made-up vocabularies (places, people, organisations, topics) plus a long
tail of invented surnames and place names, so keyword postings have the skew of real news (a few
very common stems, many rare ones).  Article ``i`` of seed ``s`` depends only on ``(s, i)``, so a
smaller archive is a prefix of a larger one and a build can resume anywhere.

``RecycledEmbedder`` is the vector-side substitute (real MiniLM is too slow for 10^6 articles on
this machine): each document vector is a seeded mix of a few real MiniLM vectors of generated
sentences (embedded once, cached) plus noise, normalised.  Token counting and question embedding
stay the real model's.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from index.models import Article

GENERATOR_VERSION = "1"
FIRST_DAY = date(2015, 1, 1)
DAYS = 3652  # ten years

_PLACES = [
    "Harrowgate", "Velmont", "Port Caddis", "Eastbrook", "Lindqvist", "Marrow Bay", "Tessaly",
    "Corvane", "North Ardell", "Quillon", "Brinmoor", "Saltreach", "Oderra", "Fennick",
    "Glassford", "Mirelle", "Stanwick", "Ostrava Point", "Kelloway", "Duvessa",
]
_MASTHEADS = [
    "Herald", "Tribune", "Courier", "Gazette", "Observer", "Ledger", "Chronicle", "Daily",
    "Sentinel", "Record",
]
OUTLETS = [f"{place} {mast}" for place in _PLACES for mast in _MASTHEADS]  # 200 outlets
OUTLET_WEIGHTS = [1 / (rank + 1) ** 0.8 for rank in range(len(OUTLETS))]  # a few big ones

_FIRST = [
    "Amara", "Bastian", "Celia", "Dorian", "Elin", "Faris", "Greta", "Hollis", "Imre", "Jonas",
    "Kaia", "Lorcan", "Mira", "Nadim", "Orla", "Piet", "Quinn", "Rosalind", "Soren", "Talia",
    "Ulric", "Vesna", "Wendell", "Ximena", "Yusuf", "Zora",
]
_SYLLABLES = [
    "ka", "lor", "ven", "dri", "mo", "sta", "quel", "bar", "ith", "nov", "ser", "tal", "gru",
    "fen", "ash", "wick", "mer", "lin", "dov", "ra", "zel", "tor", "bel", "cas",
]
_ORG_KINDS = [
    "Ministry of Finance", "Port Authority", "Transit Board", "University", "Medical Centre",
    "Water Board", "Chamber of Commerce", "Housing Trust", "Energy Cooperative", "Police Service",
    "City Council", "Teachers Union", "Farmers Guild", "Science Institute", "Football Club",
]
_ROLES = [
    "minister", "mayor", "spokesperson", "chief executive", "director", "professor", "analyst",
    "union leader", "coach", "inspector", "council member", "economist", "judge", "organiser",
]
TOPICS = {
    "budget": ["budget", "deficit", "tax rate", "spending plan", "bond sale", "audit"],
    "transit": ["rail line", "bus route", "ferry service", "tram depot", "fare increase"],
    "health": ["hospital wing", "vaccine programme", "clinic", "waiting list", "outbreak"],
    "housing": ["rent freeze", "housing estate", "building permit", "mortgage rate"],
    "energy": ["wind farm", "power grid", "fuel price", "solar array", "gas pipeline"],
    "water": ["reservoir", "flood barrier", "drought", "water main", "river dredging"],
    "schools": ["exam results", "school closure", "teacher shortage", "curriculum"],
    "sport": ["championship", "transfer fee", "stadium", "season opener", "relegation"],
    "crime": ["fraud inquiry", "court ruling", "arrest", "smuggling ring", "appeal"],
    "science": ["telescope", "research grant", "laboratory", "gene study", "satellite launch"],
    "farming": ["harvest", "grain export", "livestock market", "fertiliser cost", "orchard"],
    "trade": ["tariff", "shipping lane", "export deal", "customs dispute", "trade fair"],
}
_TOPIC_NAMES = list(TOPICS)
_TIMES = [
    "on Monday", "on Tuesday", "last week", "earlier this month", "last year", "this morning",
    "two days ago", "on Friday evening", "next month", "three weeks ago",
]
_SENTENCES = [
    "The {role} of the {org} said {time} that the {thing} would be reviewed before the end of the year.",
    "{person}, the {role} in {place}, told reporters that the {thing} had cost more than {n} million.",
    "Officials in {place} confirmed {time} that talks on the {thing} were continuing.",
    "According to the {org}, about {n} percent of residents were affected by the {thing}.",
    "Critics of the {thing} argued that the {org} had ignored warnings from local groups.",
    "{person} said the decision on the {thing} was taken after months of public consultation.",
    "The {thing} in {place} drew {n} objections, many from families living near the site.",
    "A report published {time} by the {org} found that the {thing} was behind schedule.",
    "Residents of {place} gathered outside the offices of the {org} to protest the {thing}.",
    "The {org} expects the {thing} to be completed within {n} months, a spokesperson said.",
    "{person} described the {thing} as the most important change in {place} for a generation.",
    "Figures released {time} show that the {thing} has grown by {n} percent since last spring.",
    "Opposition members in {place} called for an independent inquiry into the {thing}.",
    "The {role} declined to comment on the {thing} while the review by the {org} was under way.",
    "In a statement, the {org} said it remained committed to the {thing} despite the delays.",
    "Local businesses in {place} said the {thing} had already changed how they plan for the winter.",
    "{person} warned that without the {thing} the region could lose {n} jobs.",
    "The first phase of the {thing} will begin in {place} and then extend to nearby towns.",
    "Questions about the {thing} dominated a meeting of the {org} that lasted {n} hours.",
    "Supporters of the {thing} pointed to similar projects that had succeeded elsewhere.",
    "The {org} has asked {person} to lead a panel that will report on the {thing}.",
    "Earlier estimates put the cost of the {thing} at {n} million, well below the latest figure.",
    "Several members of the {org} said privately that the {thing} lacked a clear timetable.",
    "The {thing} was first proposed by {person} when the {role} took office in {place}.",
]
_HEADLINES = [
    "{org} backs {thing} after long debate",
    "{person} defends {thing} as costs rise",
    "Protests grow over {thing} in {place}",
    "Inquiry opens into {thing}",
    "{org} delays {thing} again",
    "What the {thing} means for {place}",
]
_QUESTIONS = [
    "What did {person} say about the {thing}?",
    "Why did the {org} delay the {thing} in {place}?",
    "How much did the {thing} in {place} cost?",
    "Who is leading the review of the {thing}?",
    "When will the {thing} be completed?",
    "Why are residents of {place} protesting?",
]


def _invented(rng: random.Random) -> str:
    """A made-up proper name: the long tail of a news vocabulary (about 14,000 spellings)."""
    parts = 2 + (rng.random() < 0.3)
    return "".join(rng.choice(_SYLLABLES) for _ in range(parts)).capitalize()


@dataclass
class _Slots:
    """What one article is about: its topic, people, place and organisation."""

    topic: str
    people: list[str]
    place: str
    org: str

    @classmethod
    def draw(cls, rng: random.Random) -> _Slots:
        # Zipf-like: a few people and places recur across the archive, most are rare.
        place = rng.choice(_PLACES) if rng.random() < 0.6 else f"{_invented(rng)}ton"
        people = [
            f"{rng.choice(_FIRST)} {_invented(rng)}" for _ in range(rng.randint(1, 3))
        ]
        org = f"{place} {rng.choice(_ORG_KINDS)}"
        return cls(rng.choice(_TOPIC_NAMES), people, place, org)

    def fill(self, template: str, rng: random.Random) -> str:
        return template.format(
            person=rng.choice(self.people),
            role=rng.choice(_ROLES),
            org=self.org,
            place=self.place,
            thing=rng.choice(TOPICS[self.topic]),
            time=rng.choice(_TIMES),
            n=rng.randint(2, 900),
        )


@dataclass
class SyntheticArticle:
    """An article and the exact [start, end) spans of its sentences (as generated)."""

    article: Article
    spans: list[tuple[int, int]]


def article(seed: int, i: int) -> SyntheticArticle:
    """Article ``i`` of the archive ``seed``: 400-900 words in 4-9 paragraphs, one of 200
    outlets, published on one day of ten years."""
    rng = random.Random(f"{seed}:{i}")
    slots = _Slots.draw(rng)
    words_wanted = rng.randint(400, 900)
    paragraphs: list[list[str]] = [[]]
    words = 0
    while words < words_wanted:
        sentence = slots.fill(rng.choice(_SENTENCES), rng)
        if len(paragraphs[-1]) >= rng.randint(3, 6):
            paragraphs.append([])
        paragraphs[-1].append(sentence)
        words += sentence.count(" ") + 1
    text, spans = "", []
    for p, paragraph in enumerate(paragraphs):
        if p:
            text += "\n\n"
        for s, sentence in enumerate(paragraph):
            if s:
                text += " "
            spans.append((len(text), len(text) + len(sentence)))
            text += sentence
    title = slots.fill(rng.choice(_HEADLINES), rng)
    published = FIRST_DAY + timedelta(days=rng.randrange(DAYS))
    outlet = rng.choices(OUTLETS, weights=OUTLET_WEIGHTS)[0]
    return SyntheticArticle(
        Article(
            id=f"scale-{seed}-{i:07d}",
            title=title,
            text=text,
            outlet=outlet,
            published=published,
            url=f"https://news.invalid/{seed}/{i}",
            authors=[slots.people[0]],
            source=f"synthetic:{seed}:{i}",
        ),
        spans,
    )


@dataclass(frozen=True)
class Question:
    """A benchmark question and the filters it is asked with."""

    text: str
    outlet: str
    as_of: date


def questions(seed: int, n: int, archive_size: int) -> list[Question]:
    """``n`` questions about articles of the archive (their people, places and topics), each
    with an outlet drawn as the archive's are and an as_of day in the archive's last 80%."""
    rng = random.Random(f"questions:{seed}")
    out = []
    for _ in range(n):
        source = random.Random(f"{seed}:{rng.randrange(archive_size)}")
        slots = _Slots.draw(source)
        out.append(
            Question(
                slots.fill(rng.choice(_QUESTIONS), rng),
                rng.choices(OUTLETS, weights=OUTLET_WEIGHTS)[0],
                FIRST_DAY + timedelta(days=rng.randrange(DAYS // 5, DAYS)),
            )
        )
    return out


def pool_sentences(seed: int, n: int) -> list[str]:
    """``n`` generated sentences whose real vectors the recycled embedder mixes."""
    rng = random.Random(f"pool:{seed}")
    return [_Slots.draw(rng).fill(rng.choice(_SENTENCES), rng) for _ in range(n)]


def vector_pool(embedder: Any, seed: int, n: int, cache: Path | None = None) -> Any:
    """Real vectors of ``pool_sentences(seed, n)`` (a float32 array), kept in ``cache``."""
    import numpy as np

    if cache is not None and cache.exists():
        return np.load(cache)
    pool = np.asarray(embedder.embed_documents(pool_sentences(seed, n)), dtype=np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".partial.npy")
        np.save(tmp, pool)
        tmp.replace(cache)
    return pool


class RecycledEmbedder:
    """LABELLED SUBSTITUTE for the model's document vectors; everything else is the real model.

    ``embed_documents(texts)`` gives each text a unit vector mixed from three vectors of the
    real pool (chosen and weighted by a hash of the text, so the same text always gets the
    same vector) plus Gaussian noise.  ``count_tokens`` and ``embed_query`` are the real
    embedder's, so chunking and questions are exactly as in production.
    """

    def __init__(self, real: Any, pool: Any, *, noise: float = 0.6) -> None:
        self.real = real
        self.pool = pool
        self.noise = noise
        self.spec = real.spec

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """The real model's token counts."""
        return self.real.count_tokens(texts)

    def embed_query(self, text: str) -> list[float]:
        """The real model's vector of the question."""
        return self.real.embed_query(text)

    def embed_documents(self, texts: Sequence[str]) -> list[list[float]]:
        """Recycled vectors (see the class notes), in order."""
        import numpy as np

        out = np.empty((len(texts), self.pool.shape[1]), dtype=np.float32)
        for row, text in enumerate(texts):
            digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
            rng = np.random.default_rng(int.from_bytes(digest, "little"))
            picks = rng.integers(0, len(self.pool), 3)
            mixed = rng.dirichlet((1.0, 1.0, 1.0)) @ self.pool[picks]
            noise = rng.standard_normal(self.pool.shape[1]).astype(np.float32)
            out[row] = mixed / np.linalg.norm(mixed) + noise * (self.noise / np.sqrt(len(noise)))
        out /= np.linalg.norm(out, axis=1, keepdims=True)
        return out.tolist()
