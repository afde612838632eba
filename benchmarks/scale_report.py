"""The scale benchmark's report: every measured size side by side, against issue 16's targets,
with a column extrapolated to 1M articles through all of them (``python benchmarks/scale.py
report``)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

TARGETS = "100-article batch within 1.5x from 10k to 1M; query p50 <= 100 ms, p95 <= 250 ms; " \
    "cold open <= 5 s; serve <= 8 GB RAM (all at 1M articles)"

MILLION = 1_000_000


def extrapolate(sizes: list[int], values: list[float], fit: str) -> float:
    """The value at 1M articles from every measured size: ``power`` (y = a * n^b fitted by least
    squares on logarithms, for costs whose growth with the archive is unknown), ``linear``
    (memory, bytes: a least-squares line) or ``same`` (a ratio: the largest size's).  Through two
    sizes both fits pass exactly through them; with three or more, one noisy size (a measurement
    under load) bends the projection less."""
    points = list(zip(sizes, values, strict=True))
    if fit == "same":
        return points[-1][1]
    if fit == "linear":
        slope, intercept = _line([float(n) for n, _ in points], [y for _, y in points])
        return intercept + slope * MILLION
    if any(y <= 0 for _, y in points):
        return float("nan")
    b = growth_exponent(sizes, values)
    log_a = statistics.fmean(math.log(y) - b * math.log(n) for n, y in points)
    return math.exp(log_a) * MILLION**b


def growth_exponent(sizes: list[int], values: list[float]) -> float:
    """``b`` of the power law y = a * n^b fitted to the points (0: flat, 1: linear in the
    archive); a cost within 1.5x from 10k to 1M needs b <= log(1.5) / log(100) = 0.088."""
    if any(y <= 0 for y in values):
        return float("nan")
    slope, _ = _line([math.log(n) for n in sizes], [math.log(y) for y in values])
    return slope


def _line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares slope and intercept."""
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    return slope, my - slope * mx


def report(root: Path, seed: int, sizes: list[int] | None = None, series: str = "") -> str:
    """Every measured size of one series (``series``: "" for 4 vectors per article, "-v2" for
    2) side by side, as markdown; with two or more sizes, a last column extrapolated to 1M
    articles from all of them (labelled as such) and, for costs, the fitted growth exponent
    (``growth_exponent``)."""
    found = sorted(
        (json.loads(p.read_text()) for p in root.glob(f"results-a*-s{seed}{series}.json")),
        key=lambda r: r["size"],
    )
    found = [r for r in found if not sizes or r["size"] in sizes]  # e.g. those measured together
    if not found:
        return "nothing measured yet"
    projected = len(found) >= 2 and found[-1]["size"] < MILLION
    head = "| | " + " | ".join(f"{r['size']:,} articles" for r in found)
    head += " | 1M, extrapolated | growth exponent b |" if projected else " |"
    lines = [head, "|---|" + "---:|" * (len(found) + 2 * projected)]

    def row(name: str, cell: Any, fit: str | None = None) -> None:
        """One line; ``cell(result)`` gives a number or a tuple of numbers."""
        values: list[Any] = []
        for r in found:
            try:
                values.append(cell(r))
            except KeyError:  # that part not measured for this size
                values.append(None)
        shown = [" / ".join(map(_fmt, v)) if isinstance(v, tuple) else _fmt(v) for v in values]
        if projected:
            measured = [(r["size"], v) for r, v in zip(found, values, strict=True) if v is not None]
            if fit and len(measured) >= 2:
                sizes = [n for n, _ in measured]
                columns = list(zip(*[v if isinstance(v, tuple) else (v,) for _, v in measured],
                                   strict=True))
                guess = tuple(extrapolate(sizes, list(c), fit) for c in columns)
                shown.append(" / ".join(map(_fmt, guess)))
                shown.append(" / ".join(f"{growth_exponent(sizes, list(c)):.2f}" for c in columns)
                             if fit == "power" else "")
            else:
                shown += ["", ""]
        lines.append(f"| {name} | " + " | ".join(shown) + " |")

    row("chunks / with a vector", lambda r: (r["chunks"], r["dense_chunks"]), "linear")
    row("ingest 100 articles, a process without the graph loaded, s (median of 3)",
        lambda r: statistics.median(r["batches"]["ingest_100_s"]), "power")
    row("  of which Store.write, s",
        lambda r: statistics.median(r["batches"]["ingest_100_store_write_s"]), "power")
    row("  catch-up after them (graph load and upsert of their vectors), s",
        lambda r: r["batches"]["catch_up_s"], "power")
    row("ingest 100 articles, graph loaded, s (median of 3)",
        lambda r: statistics.median(r["batches"]["ingest_100_graph_loaded_s"]), "power")
    row("remove 100 articles, s (median of 3)",
        lambda r: statistics.median(r["batches"]["remove_100_s"]), "power")
    for part, label in (("queries", ""), ("queries_million_paths", ", a 1M archive's paths")):
        for key in dict.fromkeys(k for r in found for k in r.get(part, {})):
            row(f"{key} p50 / p95{label}, ms",
                lambda r, k=key, p=part: (r[p][k]["p50_ms"], r[p][k]["p95_ms"]), "power")
    row("cold open, index evicted from page cache: process start to first hybrid answer, s",
        lambda r: _first_answer(r["cold_open_evicted"]), "linear")
    row("cold open, warm page cache, s", lambda r: _first_answer(r["cold_open_warm_cache"]),
        "linear")
    row("`serve` RSS after warm-up / peak, MiB",
        lambda r: (r["serve"]["rss_mib"], r["serve"]["hwm_mib"]), "linear")
    row("disk per 1k articles, MB: catalog / keywords / Chroma",
        lambda r: tuple(r["disk"]["per_1k_mb"][k] for k in ("catalog", "keywords", "chroma")),
        "same")
    row("disk total, GB", lambda r: r["disk"]["total_gb"], "linear")
    return "\n".join(lines) + f"\n\nTargets (issue 16): {TARGETS}."


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and math.isnan(value):
        return "?"
    if isinstance(value, int) or abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"


def _first_answer(probe: dict[str, Any]) -> float:
    """A cold-open probe's seconds from launch to first answer; older probes recorded only the
    whole process (``wall_s``: a second question and the exit too)."""
    return float(probe.get("first_answer_wall_s", probe["wall_s"]))
