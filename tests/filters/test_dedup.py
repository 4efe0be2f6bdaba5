from __future__ import annotations

import random

import numpy as np
import polars as pl
import pytest

from filters.dedup import DedupIndex, _KeyStore
from tests.filters.helpers import EN_COT, ZH_COT, by_id, frame, row

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi", "chi", "psi", "omega", "sum", "product", "root", "square", "cube", "prime", "factor", "divisor", "multiple"]


def doc(seed: int, n: int = 400) -> str:
    rnd = random.Random(seed)
    return " ".join(rnd.choice(WORDS) + str(rnd.randrange(50)) for _ in range(n))


def perturb(text: str, share: float, seed: int) -> str:
    """Replace every k-th word so that roughly `share` of the 5-gram shingles change."""
    words = text.split()
    rnd = random.Random(seed)
    for i in range(len(words)):
        if rnd.random() < share:
            words[i] = "changed" + str(i)
    return " ".join(words)


def jaccard5(a: str, b: str) -> float:
    def sh(t: str) -> set:
        w = t.lower().split()
        return {tuple(w[i:i + 5]) for i in range(len(w) - 4)}
    x, y = sh(a), sh(b)
    return len(x & y) / len(x | y)


def test_exact_duplicates_modulo_case_and_whitespace_name_the_first() -> None:
    idx = DedupIndex({"field": "reasoning"})
    out = idx(frame(row("g1", EN_COT), row("g2", EN_COT.upper().replace(" ", "  \n")), row("g3", ZH_COT),
                    row("g4", ZH_COT)))
    d = by_id(out)
    assert d["g1"]["passed"] and d["g3"]["passed"]
    assert d["g2"]["reason"] == "exact_duplicate_of g1" and not d["g2"]["passed"]
    assert d["g4"]["reason"] == "exact_duplicate_of g3"


def test_near_duplicates_are_found_with_their_jaccard_and_distinct_docs_kept() -> None:
    base = doc(1)
    near = perturb(base, 0.01, 7)  # ~0.9 Jaccard on 5-grams
    far = perturb(base, 0.25, 8)  # ~0.2
    assert jaccard5(base, near) > 0.85 and jaccard5(base, far) < 0.5
    d = by_id(DedupIndex({"field": "text"})(frame(row("a", base), row("b", near), row("c", far), row("d", doc(2)))))
    assert d["a"]["passed"] and d["c"]["passed"] and d["d"]["passed"]
    assert not d["b"]["passed"] and d["b"]["reason"].startswith("near_duplicate_of a (jaccard 0.")
    assert abs(d["b"]["value"] - jaccard5(base, near)) < 0.12


def test_chinese_near_duplicates_use_characters_as_words() -> None:
    zh = ZH_COT * 3
    near = zh.replace("验证", "检查", 1)
    d = by_id(DedupIndex({"field": "reasoning"})(frame(row("a", zh, language="zh"), row("b", near, language="zh"))))
    assert not d["b"]["passed"] and d["b"]["reason"].startswith("near_duplicate_of a")


def test_state_carries_across_batches_and_batching_does_not_change_the_result() -> None:
    docs = [doc(i) for i in range(30)]
    rows = []
    for i, t in enumerate(docs):
        rows.append(row(f"g{i:03d}", t))
        if i % 3 == 0:
            rows.append(row(f"g{i:03d}x", perturb(t, 0.01, i)))
    all_rows = frame(*rows)
    one = DedupIndex({"field": "reasoning"})(all_rows)
    idx = DedupIndex({"field": "reasoning"})
    parts = pl.concat([idx(all_rows.slice(s, 7)) for s in range(0, all_rows.height, 7)])
    assert one.equals(parts)
    assert one["passed"].sum() == 30
    assert idx.n_kept == 30
    # a later batch with a near copy of an early doc is caught by the index
    late = by_id(idx(frame(row("late", perturb(docs[4], 0.01, 99)))))["late"]
    assert late["reason"].startswith("near_duplicate_of g004")


def test_prompt_dedup_keeps_all_generations_of_the_kept_prompt() -> None:
    p1 = "Find the number of positive divisors of 2024 that are perfect squares and less than 100."
    p1b = "FIND the number of positive divisors of 2024  that are\nperfect squares and less than 100."
    p2 = "求 2024 的正因数中，是完全平方数并且小于 100 的有多少个？"
    rows = [row("g1", EN_COT, prompt_id="A", problem=p1), row("g2", EN_COT, prompt_id="A", problem=p1),
            row("g3", EN_COT, prompt_id="B", problem=p1b), row("g4", ZH_COT, prompt_id="C", problem=p2)]
    idx = DedupIndex({"field": "problem"})
    d = by_id(idx(frame(*rows)))
    assert d["g1"]["passed"] and d["g2"]["passed"] and d["g4"]["passed"]
    assert not d["g3"]["passed"] and d["g3"]["reason"] == "exact_duplicate_of g1 (prompt A)"
    # later batches: generations of B still fail, of A still pass
    d2 = by_id(idx(frame(row("g5", EN_COT, prompt_id="B", problem=p1b), row("g6", ZH_COT, prompt_id="A", problem=p1))))
    assert not d2["g5"]["passed"] and d2["g5"]["reason"] == "exact_duplicate_of g1 (prompt A)"
    assert d2["g6"]["passed"]
    near = by_id(idx(frame(row("g7", EN_COT, prompt_id="D", problem=p1.replace("100.", "100, please.")))))["g7"]
    assert near["reason"].startswith("near_duplicate_of g1 (jaccard 0.") and near["reason"].endswith("(prompt A)")


def test_bad_params_name_the_field() -> None:
    with pytest.raises(ValueError, match="threshold"):
        DedupIndex({"threshold": 1.5})
    with pytest.raises(ValueError, match="bands \\* rows"):
        DedupIndex({"num_perm": 16, "bands": 20, "rows": 5})
    with pytest.raises(ValueError, match="field"):
        DedupIndex({"field": "solution"})


def test_key_store_returns_the_earliest_value_across_merged_runs() -> None:
    ks = _KeyStore()
    ks.add(np.array([5, 3], dtype=np.uint64), np.array([0, 1]))
    ks.add(np.array([3, 9], dtype=np.uint64), np.array([2, 3]))
    ks.add(np.array([9, 11], dtype=np.uint64), np.array([4, 5]))
    assert ks.lookup(np.array([3, 9, 11, 4, 5], dtype=np.uint64)).tolist() == [1, 3, 5, -1, 0]


def test_minhash_estimates_jaccard_without_bias_for_long_and_short_texts() -> None:
    from filters.dedup import minhash

    errors = []
    for seed in range(12):
        base = doc(seed)
        other = perturb(base, [0.005, 0.02, 0.05][seed % 3], seed + 50)
        sig, present = minhash(pl.Series([base, other]), 100, 5, 1)
        errors.append(float((sig[0] == sig[1]).mean()) - jaccard5(base, other))
    assert abs(float(np.mean(errors))) < 0.03 and max(abs(e) for e in errors) < 0.15
    # 3-shingle texts fill most bins by densification: 2 of 4 shingles shared -> about 0.5
    sig, present = minhash(pl.Series(["a b c d e f g", "a b c d e f h", ""]), 100, 5, 1)
    assert 0.3 < (sig[0] == sig[1]).mean() < 0.7 and present.tolist() == [True, True, False]


def test_precomputed_features_give_the_same_decisions() -> None:
    from filters.base import prepare_batch
    from filters.dedup import DedupParams, dedup_features

    rows = [row(f"g{i}", doc(i % 4) if i % 5 else perturb(doc(i % 4), 0.01, i)) for i in range(12)]
    rows.append(row("empty", "", text=""))
    batch = frame(*rows)
    params = DedupParams(field="reasoning")
    feats = dedup_features(prepare_batch(batch)["reasoning"], params)
    assert DedupIndex(params).apply(batch, feats).equals(DedupIndex(params)(batch))
    assert DedupIndex(params)(batch)["passed"].sum() == 4


def test_token_hashes_memo_is_keyed_on_content() -> None:
    from filters._ngrams import token_hashes

    a1, n1 = token_hashes(pl.Series(["one two three", "four"]))
    a2, n2 = token_hashes(pl.Series(["one two three", "five"]))
    a3, _ = token_hashes(pl.Series(["one two three", "four"]))
    assert n1.tolist() == n2.tolist() == [3, 1]
    assert a1[:3].tolist() == a2[:3].tolist() and a1[3] != a2[3]
    assert a3.tolist() == a1.tolist()


def test_key_store_runs_stop_merging_at_their_cap_and_keep_the_earliest_value() -> None:
    """Runs capped at 8 entries: many adds leave several runs, none above the cap, and every key still answers
    with the value it was first added with, as one merged run would."""
    rng = np.random.default_rng(0)
    ks = _KeyStore(max_run=8)
    first: dict[int, int] = {}
    value = 0
    for _ in range(40):
        keys = rng.integers(0, 30, size=int(rng.integers(1, 4))).astype(np.uint64)
        vals = np.arange(value, value + len(keys))
        value += len(keys)
        for k, v in zip(keys.tolist(), vals.tolist()):
            first.setdefault(k, v)
        ks.add(keys, vals)
    assert len(ks.runs) > 1 and max(len(k) for k, _ in ks.runs) <= 8 and len(ks) == value
    for k, _ in ks.runs:
        assert (np.diff(k.astype(np.int64)) >= 0).all()
    probe = np.arange(35, dtype=np.uint64)
    assert ks.lookup(probe).tolist() == [first.get(k, -1) for k in range(35)]


def test_signatures_stored_across_blocks_read_back_by_kept_index() -> None:
    from filters.dedup import _SigStore

    store = _SigStore(width=3, block_rows=4)
    rows = np.arange(30, dtype=np.uint16).reshape(10, 3)
    store.put(0, rows[:3])
    store.put(3, rows[3:10])  # spans blocks 0, 1 and 2
    assert len(store.blocks) == 3
    assert store.get([9, 0, 4, 3]).tolist() == rows[[9, 0, 4, 3]].tolist()
