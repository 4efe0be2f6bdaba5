"""Synthetic chains of thought shaped like real DeepSeek-R1 traces, for the golden-decision test and the benchmark.

Real-trace shape (R1's maths, physics and chemistry traces): long paragraphs of hedged reasoning ("Wait, ...",
"Hmm, let me check"), inline and display LaTeX, Greek letters as symbols (λ, Δ, θ, μν), units and element
symbols, multiple-choice option lists, an answer in `\\boxed{}`. The sentences come from real public text
(tests/filters/data/trace_sources.json: AIME solutions, MBPP code, alpaca answers in English and Chinese; see
data/SOURCES.md), stitched by a seeded generator; every trace is synthetic. Defects are planted at known
rates, each row at most one: mixed languages, a code block, a repetition loop, a long paragraph, truncation,
several boxed answers, no answer, a prompt holding part of a MATH-500 problem, exact and near duplicates (the near ones with known 5-gram Jaccard), Chinese
traces for Chinese prompts.

    rows = make_traces(300, seed=0, chars=(1500, 6000))   # the golden corpus
    rows = make_traces(20000, seed=0)                       # 16 KB traces, the benchmark's
"""
from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

from tests.filters.helpers import EN_COT, FR_PARAGRAPH, ZH_COT

SOURCES = Path(__file__).parent / "data" / "trace_sources.json"

OPENERS = ["Okay, so I need to", "Alright, let me", "Hmm, let me", "Wait, I should", "Let me try to",
           "So, first, I need to", "Now I want to", "Maybe I should", "Let me double-check and", "I think I can"]
VERBS = ["figure out", "compute", "check", "recall", "estimate", "verify", "work out", "re-derive", "simplify",
         "think about"]
OBJECTS = ["the wavelength λ of the emitted photon", "the change in enthalpy ΔH", "the angle θ between the vectors",
           "the coefficient of friction μ", "the decay constant λ", "the phase φ at t = 0",
           "the reduced mass μ of the system", "the angular frequency ω", "the equilibrium constant K",
           "the molar mass of NaCl in g/mol", "the work done by the gas", "the area of triangle ABC",
           "the remainder when the sum is divided by 1000", "the number of lattice points",
           "the probability that both events happen", "the standard deviation σ of the sample"]
PHYSICS = [
    "The energy of a photon is $E = hc/\\lambda$, so with $\\lambda = 500$ nm we get $E \\approx 2.48$ eV.",
    "Using $\\Delta G = \\Delta H - T\\Delta S$ at $T = 298$ K, the sign of ΔG decides whether it is spontaneous.",
    "The Coulomb force is $F = kq_1q_2/r^2$, and for two charges of 1 μC at 3 cm it is about 10 N.",
    "For a damped oscillator $x(t) = A e^{-\\gamma t}\\cos(\\omega t + \\phi)$, where γ is the damping rate.",
    "Since α + β + γ = 180°, the third angle is γ = 180° − α − β, which is 75° here.",
    "The de Broglie wavelength is λ = h/p; for an electron at 100 eV that is about 0.123 nm.",
    "In the tensor notation the metric $g_{\\mu\\nu}$ lowers the index, so $p_\\mu = g_{\\mu\\nu} p^\\nu$.",
    "At equilibrium $K_c = [\\text{NH}_3]^2 / ([\\text{N}_2][\\text{H}_2]^3)$, and adding N2 shifts it right.",
    "The moles of HCl are $n = cV = 0.1 \\times 0.025 = 2.5 \\times 10^{-3}$ mol, which neutralise the NaOH.",
    "The Greek letters ρ, σ and τ stand for density, stress and torque here, not for words.",
]
OPTIONS = [["(A) 2.48 eV", "(B) 3.10 eV", "(C) 1.24 eV", "(D) 4.96 eV"],
           ["A. It increases", "B. It decreases", "C. It stays the same", "D. It cannot be determined"],
           ["(A) $\\frac{1}{2}$", "(B) $\\frac{\\sqrt{3}}{2}$", "(C) $\\frac{\\pi}{4}$", "(D) $1$"],
           ["a) sp3", "b) sp2", "c) sp", "d) dsp2"]]
HEDGES = ["Wait, that doesn't look right.", "Hmm, let me check that again.", "So that seems consistent.",
          "But wait, maybe I made a mistake in the sign.", "Yes, that works.", "Let me verify with a small case.",
          "Alternatively, I could use the other approach.", "Okay, so that part is settled."]
DISPLAY = ["$$\\sum_{k=1}^{n} k^2 = \\frac{n(n+1)(2n+1)}{6}$$", "\\[ \\int_0^{\\pi} \\sin^2 x \\, dx = \\frac{\\pi}{2} \\]",
           "$$\\Delta E = -13.6\\left(\\frac{1}{n_f^2} - \\frac{1}{n_i^2}\\right) \\text{ eV}$$",
           "\\begin{align}\na + b &= 12 \\\\\nab &= 35\n\\end{align}"]
ZH_HEDGES = ["等一下，我再检查一下这个结果。", "嗯，这一步好像有问题。", "所以答案应该是这个。", "让我换一种方法来验证。"]
FR_EXTRA = ["Reprenons le calcul depuis le début pour être certain que le résultat est correct et complet.",
            "Donc le reste de la division est égal à trois, et non pas à cinq comme je le pensais avant.",
            "Entonces tenemos que la suma de los coeficientes es igual al valor que buscamos en el problema."]

RATES = {  # planted defect -> share of the rows
    "mixed_zh": 0.03, "mixed_fr": 0.03, "code_fenced": 0.02, "code_indented": 0.02, "loop": 0.03,
    "long": 0.03, "truncated": 0.02, "unclosed": 0.02, "multi_boxed": 0.02, "no_answer": 0.01,
    "exact_dup": 0.03, "near_dup": 0.04, "zh_trace": 0.04, "gloss": 0.02, "empty": 0.01, "contaminated": 0.02,
}
BENCHMARK = Path(__file__).parent / "data" / "math500.jsonl"  # MATH-500 rows, the recipe's benchmark holds them


@lru_cache(maxsize=1)
def sources() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SOURCES.read_text(encoding="utf-8"))
    data["sentences"] = [s for x in data["aime_solutions"] for s in re.split(r"(?<=[.!?])\s+", x["solution"])
                         if len(s) > 30]
    data["en_paragraphs"] = [p for x in data["alpaca_en"] for p in x["output"].split("\n\n") if len(p) > 80]
    data["benchmark"] = [json.loads(x)["problem"] for x in BENCHMARK.read_text(encoding="utf-8").splitlines()]
    data["zh_paragraphs"] = [p for x in data["alpaca_zh"] for p in x["output"].split("\n") if len(p) > 30]
    return data


def _paragraph(r: random.Random, src: dict[str, Any]) -> str:
    roll = r.random()
    if roll < 0.08:
        return r.choice(DISPLAY)
    if roll < 0.13:
        opts = r.choice(OPTIONS)
        return "The options are:\n" + "\n".join(opts) if r.random() < 0.5 else "Options: " + " ".join(opts)
    if roll < 0.20:
        return r.choice(src["en_paragraphs"])
    parts = [f"{r.choice(OPENERS)} {r.choice(VERBS)} {r.choice(OBJECTS)}."]
    for _ in range(r.randrange(2, 7)):
        pick = r.random()
        parts.append(r.choice(PHYSICS) if pick < 0.3 else r.choice(HEDGES) if pick < 0.45
                     else r.choice(src["sentences"]))
    return " ".join(parts)


def _body(r: random.Random, src: dict[str, Any], chars: int) -> list[str]:
    out: list[str] = []
    n = 0
    while n < chars:
        p = _paragraph(r, src)
        out.append(p)
        n += len(p) + 2
    return out


def _words5(text: str) -> set[tuple[str, ...]]:
    toks = [t for t in re.split(r"[\s!-/:-@\[-^`{-~]+", text.lower()) if t]
    return {tuple(toks[i:i + 5]) for i in range(len(toks) - 4)}


def make_traces(n: int, seed: int = 0, chars: tuple[int, int] = (14000, 18000)) -> list[dict[str, Any]]:
    """`n` generations (dicts with generation_id, prompt_id, problem, text, finish_reason, domain, language,
    kind, planted, dup_of, near_jaccard), deterministic in (n, seed, chars)."""
    return list(iter_traces(n, seed, chars))


def iter_traces(n: int, seed: int = 0, chars: tuple[int, int] = (14000, 18000)) -> Iterator[dict[str, Any]]:
    """make_traces, one row at a time (a benchmark's corpus need not fit in memory)."""
    r = random.Random(seed)
    src = sources()
    kinds = list(RATES) + ["clean"]
    weights = list(RATES.values()) + [1 - sum(RATES.values())]
    recent: list[dict[str, Any]] = []
    for i in range(n):
        kind = r.choices(kinds, weights)[0] if recent else "clean"
        aime = r.choice(src["aime_solutions"])
        problem, prompt_id, language = f"{aime['problem']} (variant {i})", f"p{i:07d}", "en"
        paras = _body(r, src, r.randrange(*chars))
        answer = f"The final answer is $\\boxed{{{r.randrange(1000)}}}$."
        finish, dup_of, near_j = "stop", None, None
        if kind == "mixed_zh":
            for _ in range(max(3, len(paras) // 4)):
                paras.insert(r.randrange(len(paras) + 1), r.choice(src["zh_paragraphs"]))
        elif kind == "mixed_fr":
            for _ in range(max(3, len(paras) // 4)):
                paras.insert(r.randrange(len(paras) + 1), r.choice([FR_PARAGRAPH, *FR_EXTRA]))
        elif kind == "gloss":  # a little foreign text, under the threshold: must pass
            paras.insert(r.randrange(len(paras) + 1), f"副词 (adverb) {r.choice(ZH_HEDGES)}")
        elif kind in ("code_fenced", "code_indented"):
            code = r.choice(src["mbpp"])["code"].replace("\r\n", "\n").replace("\t", "    ")
            block = ("```python\n" + code + "\n```" if kind == "code_fenced"
                     else "\n".join("    " + line for line in code.split("\n")))
            paras.insert(r.randrange(len(paras) + 1), block)
        elif kind == "loop":
            line = r.choice(HEDGES + PHYSICS)
            paras[r.randrange(len(paras)):0] = [line] * r.randrange(15, 60) if r.random() < 0.5 else \
                [" ".join([line] * r.randrange(20, 50))]
        elif kind == "long":
            paras[r.randrange(len(paras))] = " ".join(r.choice(src["sentences"]) for _ in range(r.randrange(25, 45)))
        elif kind == "multi_boxed":
            answer = f"Either $\\boxed{{{r.randrange(100)}}}$ or $\\boxed{{{r.randrange(100, 200)}}}$."
        elif kind == "no_answer":
            answer = ""
        elif kind == "contaminated":  # 20 words of a benchmark problem inside a new prompt
            words = r.choice(src["benchmark"]).split()
            at = r.randrange(max(1, len(words) - 20))
            problem = f"{aime['problem']} {' '.join(words[at: at + 20])}"
        elif kind == "zh_trace":
            language, problem = "zh", f"请解答：{problem}"
            paras = [ZH_COT] + [r.choice(src["zh_paragraphs"]) + r.choice(ZH_HEDGES)
                                for _ in range(max(2, len(paras) // 3))]
            if r.random() < 0.3:  # a Chinese trace drifting into English
                paras += [EN_COT] * r.randrange(2, 5)
        reasoning = "\n\n".join(paras)
        if kind in ("exact_dup", "near_dup"):
            o = r.choice(recent)
            dup_of, problem, prompt_id, answer = o["generation_id"], o["problem"], o["prompt_id"], o["answer"]
            reasoning = o["reasoning"]
            if kind == "exact_dup":
                reasoning = reasoning.replace("\n\n", "\n \n").upper() if r.random() < 0.5 else reasoning
            else:
                words = reasoning.split(" ")
                q = r.uniform(0.004, 0.03)
                for w in range(len(words)):
                    if r.random() < q:
                        words[w] = r.choice(VERBS)
                reasoning = " ".join(words)
        text = f"<think>\n{reasoning}\n</think>\n\n{answer}"
        if kind == "near_dup":
            a, b = _words5(text), _words5(next(x for x in recent if x["generation_id"] == dup_of)["text"])
            near_j = len(a & b) / max(1, len(a | b))
        if kind == "truncated":
            text, finish = text[: r.randrange(len(text) // 2, len(text) - len(answer) - 20)], "length"
        elif kind == "unclosed":
            text = text.replace("</think>", "", 1)
        elif kind == "empty":
            text = "   "
        row = {"generation_id": f"g{seed:02d}{i:07d}", "prompt_id": prompt_id, "problem": problem, "text": text,
               "finish_reason": finish, "domain": "math" if r.random() < 0.9 else "code", "language": language,
               "kind": "reasoning", "planted": kind, "dup_of": dup_of, "near_jaccard": near_j}
        yield row
        if kind == "clean":
            recent.append({**row, "reasoning": reasoning, "answer": answer})
            if len(recent) > 500:
                recent.pop(0)
