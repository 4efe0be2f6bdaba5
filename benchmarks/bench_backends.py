"""Backend overhead, printed (no asserts).

(a) Our vLLM backend vs a bare `vllm.LLM.generate` on the same engine, prompts and sampling params:
    output tokens/s and their ratio (target >= 0.95).
(b) Our OpenAI backend vs two bare asyncio loops against the same vLLM server at the same
    concurrency, one over httpx and one over the official `openai.AsyncOpenAI` client (which our
    backend uses): output tokens/s and the ratios (target >= 0.9).
(c) The OpenAI backend's rate limiter: how late `acquire` returns after its tokens are due, and how long a
    refunded acquire takes (target: a few ms, and microseconds). The tests check only what the limiter
    guarantees (never early; a refund means no wait at all); how late it is depends on the machine.
Each side runs several times, alternating, and the medians are reported. Fixed seeds make both
sides generate the same tokens, so the comparison is per token of identical work.

Usage: python benchmarks/bench_backends.py [--model DIR] [--repeats 5] [--prompts 64] [--max-tokens 128]
       [--only vllm|openai|limiter]
Without --model it builds the tiny test model (CPU); give a real model directory on a GPU.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backends.base import Completion

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOPICS = ["prime numbers", "the Pythagorean theorem", "binary search", "photosynthesis", "compound interest",
          "the French revolution", "recursion", "probability of two dice", "sorting algorithms", "gravity"]


def make_requests(count: int, max_tokens: int):
    from backends.base import ChatRequest

    return [ChatRequest([{"role": "user", "content": f"Question {i}: explain {TOPICS[i % len(TOPICS)]} step by step."}],
                        n=1, temperature=0.8, top_p=0.95, max_tokens=max_tokens, seed=1000 + i, key=str(i))
            for i in range(count)]


def median_ratio(ours: list[float], bare: list[float]) -> tuple[float, float, float]:
    """Medians of each side, and the median of the paired ratios: pairs run back to back, so load
    from other processes on a shared machine cancels within a pair better than across the run."""
    mo, mb = statistics.median(ours), statistics.median(bare)
    return mo, mb, statistics.median(o / b for o, b in zip(ours, bare))


def generated_tokens(outs: list[list[Completion]]) -> int:
    """Completion tokens of one `generate` call (both backends here count them for every completion)."""
    total = 0
    for comps in outs:
        for c in comps:
            assert c.completion_tokens is not None
            total += c.completion_tokens
    return total


def bench_vllm(model: Path, reqs, repeats: int, engine_kwargs: dict) -> None:
    import vllm
    from vllm import SamplingParams

    from backends.vllm_backend import VLLMBackend

    llm = vllm.LLM(model=str(model), **engine_kwargs)
    backend = VLLMBackend(llm=llm)
    tok = llm.get_tokenizer()

    def bare() -> float:
        # What a hand-written script does: render the chat template, then one generate call.
        start = time.perf_counter()
        texts = [tok.apply_chat_template(r.messages, add_generation_prompt=True, tokenize=False) for r in reqs]
        params = [SamplingParams(n=r.n, temperature=r.temperature, top_p=r.top_p, max_tokens=r.max_tokens,
                                 seed=r.seed) for r in reqs]
        outs = llm.generate(texts, params, use_tqdm=False)
        elapsed = time.perf_counter() - start
        return sum(len(c.token_ids) for o in outs for c in o.outputs) / elapsed

    def ours() -> float:
        start = time.perf_counter()
        outs = backend.generate(reqs)
        elapsed = time.perf_counter() - start
        return generated_tokens(outs) / elapsed

    bare(), ours()  # warm-up: first batches pay for lazy initialisation
    o: list[float] = []
    b: list[float] = []
    for i in range(repeats):
        for name, fn, acc in ((("ours", ours, o), ("bare", bare, b)) if i % 2 == 0
                              else (("bare", bare, b), ("ours", ours, o))):
            acc.append(fn())
    mo, mb, ratio = median_ratio(o, b)
    print(f"(a) vLLM in-process, {len(reqs)} prompts x {reqs[0].max_tokens} max tokens, {repeats} runs")
    print(f"    bare LLM.generate : median {mb:9.1f} output tok/s   runs {[round(x) for x in b]}")
    print(f"    VLLMBackend       : median {mo:9.1f} output tok/s   runs {[round(x) for x in o]}")
    print(f"    ratio ours/bare   : {ratio:.3f} median of paired runs, {mo / mb:.3f} of medians (target >= 0.95)")
    llm.llm_engine.engine_core.shutdown()


async def _bare_loop(base_url: str, reqs, concurrency: int) -> int:
    import httpx

    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        async def one(r) -> int:
            body = {"model": "tiny", "messages": r.messages, "temperature": r.temperature, "top_p": r.top_p,
                    "max_tokens": r.max_tokens, "seed": r.seed}
            async with sem:
                resp = await client.post(f"{base_url}/chat/completions", json=body)
            resp.raise_for_status()
            return resp.json()["usage"]["completion_tokens"]

        return sum(await asyncio.gather(*(one(r) for r in reqs)))


async def _bare_openai_loop(base_url: str, reqs, concurrency: int) -> int:
    import openai

    sem = asyncio.Semaphore(concurrency)
    async with openai.AsyncOpenAI(api_key="unused", base_url=base_url, timeout=600) as client:
        async def one(r) -> int:
            async with sem:
                resp = await client.chat.completions.create(
                    model="tiny", messages=r.messages, temperature=r.temperature, top_p=r.top_p,
                    max_tokens=r.max_tokens, seed=r.seed)
            assert resp.usage is not None  # vLLM's server reports usage on every response
            return resp.usage.completion_tokens

        return sum(await asyncio.gather(*(one(r) for r in reqs)))


def bench_openai(model: Path, reqs, repeats: int, concurrency: int, log_dir: Path) -> None:
    from backends.openai_backend import OpenAIBackend
    from tests.helpers import start_vllm_server, stop_process_group

    proc, base_url = start_vllm_server(model, log_dir / "server.log")
    try:
        backend = OpenAIBackend(base_url, "tiny", max_concurrency=concurrency)

        def bare() -> float:
            start = time.perf_counter()
            tokens = asyncio.run(_bare_loop(base_url, reqs, concurrency))
            return tokens / (time.perf_counter() - start)

        def bare_sdk() -> float:
            start = time.perf_counter()
            tokens = asyncio.run(_bare_openai_loop(base_url, reqs, concurrency))
            return tokens / (time.perf_counter() - start)

        def ours() -> float:
            start = time.perf_counter()
            outs = backend.generate(reqs)
            elapsed = time.perf_counter() - start
            return generated_tokens(outs) / elapsed

        bare(), bare_sdk(), ours()
        o: list[float] = []
        b: list[float] = []
        s: list[float] = []
        sides = [(ours, o), (bare, b), (bare_sdk, s)]
        for i in range(repeats):
            # Rotate the order so no side always runs first (or always right after another).
            for fn, acc in sides[i % 3:] + sides[:i % 3]:
                acc.append(fn())
        mo, mb, ratio = median_ratio(o, b)
        _, ms, ratio_sdk = median_ratio(o, s)
        print(f"(b) OpenAI-compatible vLLM server, {len(reqs)} requests, concurrency {concurrency}, {repeats} runs")
        print(f"    bare asyncio+httpx: median {mb:9.1f} output tok/s   runs {[round(x) for x in b]}")
        print(f"    bare AsyncOpenAI  : median {ms:9.1f} output tok/s   runs {[round(x) for x in s]}")
        print(f"    OpenAIBackend     : median {mo:9.1f} output tok/s   runs {[round(x) for x in o]}")
        print(f"    ratio ours/httpx  : {ratio:.3f} median of paired runs, {mo / mb:.3f} of medians (target >= 0.9)")
        print(f"    ratio ours/openai : {ratio_sdk:.3f} median of paired runs, {mo / ms:.3f} of medians (target >= 0.9)"
              f"   retries: {backend.retries}")
    finally:
        stop_process_group(proc)


def bench_limiter(repeats: int) -> None:
    from backends.openai_backend import _RateLimiter

    async def once() -> tuple[float, float]:
        lim = _RateLimiter(6000)  # 100 tokens/s, bursts of up to 1000; it starts full
        start = time.monotonic()
        await lim.acquire(1000)
        await lim.acquire(100)  # due a second after the bucket was emptied
        late = time.monotonic() - start - 1.0
        lim.adjust(100)  # refund: the next acquire is due at once
        t = time.perf_counter()
        await lim.acquire(100)
        return late, time.perf_counter() - t

    lates, refunded = zip(*(asyncio.run(once()) for _ in range(repeats)))
    print(f"rate limiter: returns {statistics.median(lates) * 1e3:.1f} ms after its tokens are due "
          f"(median of {repeats}; worst {max(lates) * 1e3:.1f} ms); a refunded acquire takes "
          f"{statistics.median(refunded) * 1e6:.0f} us")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="model directory (default: build the tiny model)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--only", choices=["vllm", "openai", "limiter"], default=None)
    args = ap.parse_args()

    if args.only in (None, "limiter"):
        bench_limiter(args.repeats)
    if args.only == "limiter":
        return

    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        model = args.model
        if model is None:
            from factory.tiny_model import build_tiny_model

            model = build_tiny_model(Path(tmp) / "tiny")
        reqs = make_requests(args.prompts, args.max_tokens)
        engine_kwargs = {"gpu_memory_utilization": 0.3, "max_model_len": 2048, "enforce_eager": True, "seed": 0}
        if args.only in (None, "vllm"):
            bench_vllm(model, reqs, args.repeats, engine_kwargs)
        if args.only in (None, "openai"):
            bench_openai(model, reqs, args.repeats, args.concurrency, Path(tmp))


if __name__ == "__main__":
    main()
