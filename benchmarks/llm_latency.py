"""Where a local model's seconds go: the same prompts under different llama.cpp and prompt options.

First the prompts: the first ``--limit`` answerable RealTime QA dev-small questions go through
``Assistant.ask`` with a recording chat model (no model is run), so each request is exactly
what the local writer would send (JSON schema, gate; questions the gate refuses send nothing),
once per ``--evidence`` cut (SENTENCES/WINDOW: best sentences, neighbours either side).  Then
one llama.cpp load per ``--cpu`` option (THREADS/POLL, optionally /ngramN:M for prompt-lookup
decoding) answers every request in each ``--variant``, interleaved request by request so every
combination meets the same load from the rest of the machine.  Per combination: prompt tokens,
how many the slot's prompt cache held (``cache_n``), completion tokens, llama.cpp's own prompt
and generation milliseconds and rates, wall-clock p50/p95, and how many replies differ from
the first combination's (an option that changes answers shows it).

Variants: ``base`` (the request as sent), ``cap=N`` (max_tokens N), ``nocache``
(``cache_prompt`` off: every prompt read whole).  ``--shown`` runs no model: for every
question the gate lets through, whether an accepted answer stands in what each evidence cut
shows, and the user message's length::

    flock /tmp/newsdesk-heavy.lock timeout 720 python benchmarks/llm_latency.py \\
        --model /work/models/qwen2.5-coder-1.5b-q4_k_m.gguf --limit 8 --cpu 2/50,2/0,1/0
    flock /tmp/newsdesk-heavy.lock timeout 720 python benchmarks/llm_latency.py --model ... --shown
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.llm_eval import DATA


class Recorder:
    """A chat model that records each request and refuses (so the writer moves on)."""

    name = "recorder"

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def stream(
        self, messages: Sequence[Mapping[str, str]], *, max_tokens: int | None = None,
        temperature: float = 0.0, schema: Mapping[str, Any] | None = None,
    ) -> Iterator[Any]:
        from assistant.chat_model import TextDelta, chat_request

        self.requests.append(chat_request(messages, max_tokens, temperature, schema))
        yield TextDelta('{"answerable": false, "sentences": []}')

    def complete(self, *args: Any, **kwargs: Any) -> Any:  # not used by the writer
        raise NotImplementedError


def prompts(
    model_path: str, limit: int, settings_args: dict[str, Any], window: int = 1
) -> list[dict[str, Any]]:
    """The requests the local writer sends for the first ``limit`` answerable questions."""
    from assistant.answer import Assistant
    from assistant.llm import LLMChoice, _llm_writer
    from assistant.settings import get_settings
    from evals.questions import load_questions
    from index import ingest
    from index.embeddings import get_embedder

    base = get_settings(data_dir=REPO / "benchmarks" / "out" / "dev-small" / "newsdesk")
    settings = base.updated(llm=f"local:{model_path}", **settings_args)
    embedder = get_embedder(settings)
    ingest([DATA / "corpus.jsonl"], config=settings, embedder=embedder)
    recorder = Recorder()
    writer = _llm_writer(recorder, LLMChoice("local", model_path), settings, embedder)
    writer.evidence_window = window
    assistant = Assistant(settings, embedder=embedder, writer=writer)
    for q in load_questions(DATA / "questions.jsonl").questions[:limit]:
        assistant.ask(q.question, as_of=q.as_of)
    return recorder.requests


class SourceRecorder:
    """A writer that records the question and sources it is handed, and refuses."""

    name = "source-recorder"
    mode: Literal["llm", "extractive"] = "llm"  # as assistant.llm.Writer declares it
    chat_model = None

    def __init__(self) -> None:
        self.seen: list[tuple[str, list[Any], Any]] = []

    def write(self, question: str, sources: Sequence[Any], *, as_of: Any = None) -> Iterator[Any]:
        from assistant.chat_model import TextDelta
        from assistant.models import CANNOT_ANSWER

        self.seen.append((question, list(sources), as_of))
        yield TextDelta(CANNOT_ANSWER)


def shown(model_path: str, cuts: list[tuple[int, int]]) -> None:
    """For every dev-small question the gate lets through and each (sentences, window) cut:
    whether an accepted answer stands in what the model is shown, and the user message's
    length in characters (about 3.9 characters a token for these prompts)."""
    from assistant.answer import Assistant
    from assistant.context import evidence_sources, extractive_gate, render_messages
    from assistant.prompts import load_prompts
    from assistant.settings import get_settings
    from evals.metrics import normalise
    from evals.questions import load_questions

    settings = get_settings(data_dir=REPO / "benchmarks" / "out" / "dev-small" / "newsdesk")
    recorder = SourceRecorder()
    assistant = Assistant(settings, writer=recorder)
    gate = extractive_gate(assistant.extractive)
    prompts_ = load_prompts(settings.writer.prompts_dir)
    questions = load_questions(DATA / "questions.jsonl").questions
    for q in questions:
        assistant.ask(q.question, as_of=q.as_of)
    print("| sentences/window | answer shown | user message chars (mean) |")
    print("|---|---:|---:|")
    for n, window in [(0, 0), *cuts]:
        hits, chars, asked = 0, 0, 0
        for q, (text, sources, as_of) in zip(questions, recorder.seen, strict=True):
            if not gate(text, sources):
                continue
            asked += 1
            cut = sources if n == 0 else evidence_sources(
                text, sources, assistant.extractive.rank, sentences=n, window=window)
            body = render_messages(text, cut, as_of=as_of, prompts=prompts_, structured=True)
            user = body[1]["content"]
            shown_text = normalise(user.split("Question:")[0])
            hits += any(normalise(a) and normalise(a) in shown_text for a in q.answers)
            chars += len(user)
        label = "whole chunks" if n == 0 else f"{n}/{window}"
        print(f"| {label} | {hits}/{asked} | {chars / asked:.0f} |")


def load(path: str, threads: int, poll: int, batch: int, ubatch: int, spec: str = "") -> Any:
    """One llama.cpp server over ``path`` with these CPU and batch options; ``spec`` 'ngramN:M'
    drafts up to M tokens by looking up the last N in the prompt (prompt-lookup decoding)."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = path
    params.n_ctx = 4096
    params.n_parallel = 1
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.cpuparams.poll = poll
    params.cpuparams_batch.poll = poll
    params.n_batch = batch
    params.n_ubatch = ubatch
    params.warmup = False
    params.verbosity = -1
    if spec:
        n, m = spec.removeprefix("ngram").split(":")
        params.speculative.types = [
            xllamacpp.common_speculative_type.COMMON_SPECULATIVE_TYPE_NGRAM_SIMPLE]
        params.speculative.ngram_simple.size_n = int(n)
        params.speculative.ngram_simple.size_m = int(m)
    return xllamacpp.Server(params)


def measure(server: Any, requests: list[dict[str, Any]], variant: str) -> list[dict[str, Any]]:
    """Each request answered under ``variant``: tokens, llama.cpp timings, wall seconds, text."""
    rows = []
    for request in requests:
        body = dict(request)
        if variant.startswith("cap="):
            body["max_tokens"] = int(variant.removeprefix("cap="))
        if variant == "nocache":
            body["cache_prompt"] = False
        started = time.perf_counter()
        reply = server.handle_chat_completions(body)
        wall = time.perf_counter() - started
        usage, timings = reply.get("usage") or {}, reply.get("timings") or {}
        rows.append({
            "prompt": usage.get("prompt_tokens"), "completion": usage.get("completion_tokens"),
            "cached": timings.get("cache_n"), "prompt_ms": timings.get("prompt_ms"),
            "gen_ms": timings.get("predicted_ms"), "wall": wall,
            "text": (reply.get("choices") or [{}])[0].get("message", {}).get("content"),
        })
    return rows


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument(
        "--cpu", default="2/50", help="THREADS/POLL[/ngramN:M][,...]: one load each")
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--ubatch", type=int, default=512)
    parser.add_argument("--variant", default="base")
    parser.add_argument("--evidence", default="4/1", help="SENTENCES/WINDOW[,...]")
    parser.add_argument("--dump", type=Path, default=None, help="write every row as JSON here")
    parser.add_argument("--shown", action="store_true", help="only the evidence cuts' recall")
    args = parser.parse_args()
    if args.shown:
        shown(args.model, [(n, w) for n in (2, 3, 4, 6) for w in (0, 1)])
        return
    sets = {}
    for cut in args.evidence.split(","):  # SENTENCES/WINDOW
        n, w = cut.split("/")
        sets[cut] = prompts(args.model, args.limit, {"evidence_sentences": int(n)}, int(w))
    count = len(next(iter(sets.values())))
    print(f"{count} requests (of {args.limit} questions; the rest gated)", file=sys.stderr)
    servers = {}
    for cpu in args.cpu.split(","):
        threads, poll, *spec = cpu.split("/")
        servers[cpu] = load(args.model, int(threads), int(poll), args.batch, args.ubatch, *spec)
        measure(servers[cpu], sets[next(iter(sets))][:1], "cap=1")  # first touch, not counted
    combos = [(c, n, v) for c in servers for n in sets for v in args.variant.split(",")]
    rows: dict[str, list[dict[str, Any]]] = {f"{c} ev{n} {v}": [] for c, n, v in combos}
    for i in range(count):  # interleaved, so every combination meets the same machine load
        for c, n, v in combos:
            rows[f"{c} ev{n} {v}"] += measure(servers[c], sets[n][i : i + 1], v)
    print(f"batch {args.batch}/{args.ubatch}; {count} requests, interleaved")
    print("| threads/poll, evidence, variant | prompt tok | cached tok | completion tok "
          "| prompt ms/q | read tok/s | gen ms/q | write tok/s | wall p50 s | wall p95 s "
          "| replies differing |")
    print("|---|" + "---:|" * 10)
    first = next(iter(rows.values()))
    for name, got in rows.items():
        differ = sum(a["text"] != b["text"] for a, b in zip(got, first, strict=True))

        def total(key: str, got: list[dict[str, Any]] = got) -> float:
            return float(sum(r[key] or 0 for r in got))

        walls = [r["wall"] for r in got]
        read = (total("prompt") - total("cached")) / max(total("prompt_ms"), 1) * 1000
        write = total("completion") / max(total("gen_ms"), 1) * 1000
        print(f"| {name} | {total('prompt') / count:.0f} | {total('cached') / count:.0f} "
              f"| {total('completion') / count:.0f} | {total('prompt_ms') / count:.0f} "
              f"| {read:.0f} | {total('gen_ms') / count:.0f} | {write:.1f} "
              f"| {pct(walls, 0.5):.1f} | {pct(walls, 0.95):.1f} | {differ} |", flush=True)
    if args.dump:
        args.dump.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
