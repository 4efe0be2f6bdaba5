"""Near-duplicate detection: our MinHash/LSH (filters/dedup.py) against rensa and datasketch, same run.

    .venv/bin/python benchmarks/bench_dedup.py [--n 20000] [--words 600] [--batch 1000] [--repeats 3]
                                              [--datasketch-n 3000]

The corpus: synthetic chains of thought (sentences of connectives, verbs, nouns and numbers, about
`--words` words each). One in ten documents is a planted variant of an earlier one, with words
replaced so that its word-5-gram Jaccard similarity to its source lands in [0.8, 0.98] (positives,
60%) or [0.5, 0.75] (near misses, 40%); the true Jaccard of every pair is computed from the shingle
sets. Every method sees the same shingles (lowercased words, 5-grams) and makes the same decision,
document by document in corpus order: a document is a duplicate when an earlier kept document has an
estimated Jaccard >= 0.8 with it (LSH finds the candidates), and then names that document.

Methods (each in a fresh process, so peak memory is its own):
  ours            DedupIndex (exact off, near on; defaults: 128 values, LSH 20 bands x 5 rows)
  ours+rensa-sig  DedupIndex fed signatures from rensa's prehashed batch path (R-MinHash over our
                  shingle hashes): what dedup.py would be with rensa doing the MinHash
  rensa           rensa's documented dedup: RMinHash.from_token_sets + RMinHashDeduplicator
                  (128 values, LSH 32 bands x 4 rows, as 20 does not divide 128)
  datasketch      MinHash.bulk + MinHashLSH (128 values, params (20, 5)); --datasketch-n docs only
                  (a prefix: it is ~100x slower), its recall counted on the pairs inside the prefix

Prints (no asserts): docs/s, recall on planted pairs with true Jaccard >= 0.8 (and on >= 0.85),
false positives (near misses or unrelated documents flagged), peak RSS over the RSS after loading
the corpus, and each method's docs/s over ours (median over rounds of the same-round ratio). Then
the estimators alone: mean, SD and share >= 0.8 of each method's estimate over thousands of random
set pairs whose Jaccard is exactly 0.8. Recall differences of a few points between methods on the
planted pairs are the coin flips of the pairs just above 0.8; this second figure tells whether a
method's estimate is biased.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

THRESHOLD = 0.8
NUM_PERM = 128
NGRAM = 5
SEED = 1

CONN = ["so", "now", "then", "next", "wait", "hmm", "alternatively", "therefore", "but", "also", "first",
        "let me think", "okay", "actually", "in that case", "on the other hand", "let me check", "similarly"]
VERB = ["compute", "check", "simplify", "expand", "factor", "consider", "rewrite", "bound", "estimate",
        "substitute", "evaluate", "compare", "differentiate", "integrate", "count", "verify", "sum", "reduce"]
NOUN = ["sum", "product", "remainder", "quotient", "denominator", "numerator", "polynomial", "sequence",
        "series", "triangle", "circle", "radius", "angle", "area", "perimeter", "probability", "expectation",
        "function", "derivative", "integral", "root", "coefficient", "divisor", "multiple", "prime", "digit"]


# ---------------------------------------------------------------------------------------------------
# Corpus

def _cot(rnd: random.Random, words: int) -> list[str]:
    out: list[str] = []
    while len(out) < words:
        out += (f"{rnd.choice(CONN)} {rnd.choice(VERB)} the {rnd.choice(NOUN)} of {rnd.randrange(1000)} "
                f"and {rnd.randrange(1000)} to get {rnd.randrange(10000)}").split()
    return out


def _shingles(words: list[str]) -> set[str]:
    return {" ".join(words[i:i + NGRAM]) for i in range(len(words) - NGRAM + 1)}


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b)


def _variant(rnd: random.Random, src: list[str], target: float) -> list[str]:
    """Replace words at random so that the 5-gram Jaccard lands near `target`: a changed word breaks
    the NGRAM shingles covering it, so a share p of changed words keeps about (1-p)^NGRAM of them,
    and J = s / (2 - s) for a kept share s."""
    s = 2 * target / (1 + target)
    p = 1 - s ** (1 / NGRAM)
    return [f"edit{rnd.randrange(10**6)}" if rnd.random() < p else w for w in src]


def make_corpus(n: int, words: int, seed: int = 0) -> tuple[pl.DataFrame, list[dict]]:
    rnd = random.Random(seed)
    docs: list[list[str]] = []
    bases: list[int] = []
    pairs: list[dict] = []
    for i in range(n):
        if bases and rnd.random() < 0.1:
            src = rnd.choice(bases)
            target = rnd.uniform(0.8, 0.98) if rnd.random() < 0.6 else rnd.uniform(0.5, 0.75)
            w = _variant(rnd, docs[src], target)
            pairs.append({"doc": i, "source": src, "jaccard": _jaccard(_shingles(docs[src]), _shingles(w))})
        else:
            w = _cot(rnd, words)
            bases.append(i)
        docs.append(w)
    # Sentence case and punctuation, which every method's normalisation removes again.
    texts = [" ".join(w).capitalize().replace(" then ", ", then ") + "." for w in docs]
    df = pl.DataFrame({"generation_id": [f"g{i:07d}" for i in range(n)], "prompt_id": [f"p{i:07d}" for i in range(n)],
                       "text": texts})
    return df, pairs


# ---------------------------------------------------------------------------------------------------
# Methods: each returns, per document in order, the index of the kept document it duplicates (-1: kept)

_WORD = re.compile(r"[a-z0-9_]+")  # our normalisation, for ASCII text: lowercase, split on punctuation


def _token_sets(texts: list[str]) -> list[list[str]]:
    out = []
    for t in texts:
        w = _WORD.findall(t.lower())
        out.append([" ".join(w[i:i + NGRAM]) for i in range(len(w) - NGRAM + 1)])
    return out


def run_ours(df: pl.DataFrame, batch: int, rensa_sig: bool = False) -> np.ndarray:
    from filters._ngrams import sequence_hashes, token_hashes, word_ngram_hashes
    from filters.dedup import DedupIndex

    idx = DedupIndex({"field": "text", "exact": False, "threshold": THRESHOLD, "num_perm": NUM_PERM,
                      "ngram": NGRAM, "seed": SEED})
    if rensa_sig:
        import rensa
    out = []
    for s in range(0, df.height, batch):
        part = df.slice(s, batch)
        features = None
        if rensa_sig:
            th, n_words = token_hashes(part["text"])
            doc, h, _ = word_ngram_hashes((th, n_words), NGRAM, short_as_one=True)
            offsets = np.zeros(len(n_words) + 1, dtype=np.uint64)
            np.cumsum(np.bincount(doc, minlength=len(n_words)), out=offsets[1:])
            m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(h, offsets, NUM_PERM, SEED)
            sig = np.array(m.to_rows(), dtype=np.uint32).reshape(len(n_words), NUM_PERM)
            features = (sequence_hashes(th, n_words), sig, offsets[1:] > offsets[:-1])
        dec = idx.apply(part, features)
        out += dec["reason"].to_list()
    index = {g: i for i, g in enumerate(df["generation_id"].to_list())}
    return np.array([-1 if r == "ok" else index[r.split()[1]] for r in out], dtype=np.int64)


def run_rensa(df: pl.DataFrame, batch: int) -> np.ndarray:
    import rensa

    dedup = rensa.RMinHashDeduplicator(THRESHOLD, NUM_PERM, True, 32, SEED)
    kept: dict[str, object] = {}
    rep = np.full(df.height, -1, dtype=np.int64)
    texts = df["text"].to_list()
    for s in range(0, df.height, batch):
        mhs = rensa.RMinHash.from_token_sets(_token_sets(texts[s:s + batch]), NUM_PERM, SEED)
        keys = [str(s + j) for j in range(len(mhs))]
        flags = dedup.add_pairs(list(zip(keys, mhs)))
        for j, (k, mh, ok) in enumerate(zip(keys, mhs, flags)):
            if ok:
                kept[k] = mh
                continue
            # The deduplicator says only "duplicate"; our filter's reason names the kept document.
            cands = [c for c in dedup.get_duplicates(mh) if c in kept]
            best = max(cands, key=lambda c: (mh.jaccard(kept[c]), -int(c)), default=None)
            rep[s + j] = -2 if best is None else int(best)
    return rep


def run_datasketch(df: pl.DataFrame, batch: int) -> np.ndarray:
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM, params=(20, 5))
    kept: dict[int, object] = {}
    rep = np.full(df.height, -1, dtype=np.int64)
    texts = df["text"].to_list()
    for s in range(0, df.height, batch):
        sets = [[x.encode() for x in t] for t in _token_sets(texts[s:s + batch])]
        mhs = MinHash.bulk(sets, num_perm=NUM_PERM, seed=SEED)
        for j, mh in enumerate(mhs):
            best, best_j = -1, -1.0
            for c in lsh.query(mh):
                e = mh.jaccard(kept[c])
                if e >= THRESHOLD and (e > best_j or (e == best_j and c < best)):
                    best, best_j = c, e
            if best >= 0:
                rep[s + j] = best
            else:
                kept[s + j] = mh
                lsh.insert(s + j, mh)
    return rep


METHODS = {
    "ours": lambda df, b: run_ours(df, b),
    "ours+rensa-sig": lambda df, b: run_ours(df, b, rensa_sig=True),
    "rensa": run_rensa,
    "datasketch": run_datasketch,
}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    # VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over execve, so a child would report
    # the parent's peak (the parent holds the corpus as Python lists).
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(method: str, corpus: Path, batch: int, limit: int, out: Path) -> None:
    # Import the method's libraries before the baseline, so that import size is not counted as data.
    if method.startswith("ours"):
        import filters.dedup  # noqa: F401
    if "rensa" in method:
        import rensa  # noqa: F401
    if method == "datasketch":
        import datasketch  # noqa: F401
    df = pl.read_parquet(corpus).head(limit)
    base = _rss_bytes()
    start = time.perf_counter()
    rep = METHODS[method](df, batch)
    elapsed = time.perf_counter() - start
    peak = _peak_rss_bytes()
    np.save(out, rep)
    print(json.dumps({"seconds": elapsed, "docs": df.height, "peak_over_base": max(0, peak - base)}))


# ---------------------------------------------------------------------------------------------------

def score(rep: np.ndarray, pairs: list[dict], n: int) -> dict:
    planted = {p["doc"]: p for p in pairs if p["doc"] < n}
    pos = [p for p in planted.values() if p["jaccard"] >= THRESHOLD]
    pos85 = [p for p in pos if p["jaccard"] >= 0.85]
    flagged = rep[:n] != -1
    fp = sum(1 for i in np.flatnonzero(flagged) if i not in planted or planted[i]["jaccard"] < 0.75)
    return {
        "recall": sum(flagged[p["doc"]] for p in pos) / max(1, len(pos)),
        "recall85": sum(flagged[p["doc"]] for p in pos85) / max(1, len(pos85)),
        "n_pos": len(pos),
        "false_pos": fp,
    }


def estimator_at_threshold(pairs: int, datasketch_pairs: int) -> dict[str, tuple[float, float, float]]:
    """(mean, SD, share >= threshold) of each method's Jaccard estimate over `pairs` random set pairs
    whose true Jaccard is exactly THRESHOLD (660 distinct shingles, 528 shared): the signatures
    themselves, without LSH, tokenising or the sampling noise of a few planted pairs near 0.8.
    An unbiased estimator puts about half of them at or above the threshold."""
    import rensa
    from datasketch import MinHash

    from filters.dedup import minhash

    rng = np.random.default_rng(0)
    shared, own = 528, 66  # 528 / (528 + 2 * 66) = 0.8
    docs = []
    for _ in range(pairs):
        common = rng.integers(0, 2**63, shared, dtype=np.uint64)
        docs += [np.concatenate([common, rng.integers(0, 2**63, own, dtype=np.uint64)]) for _ in range(2)]
    hashes = np.concatenate(docs)
    lengths = np.array([len(d) for d in docs], dtype=np.int64)
    ours, _ = minhash((hashes, lengths), NUM_PERM, 1, SEED)  # ngram 1: the hashes are the shingles
    ours = ours.astype(np.uint16)  # what DedupIndex stores and compares
    offsets = np.zeros(len(docs) + 1, dtype=np.uint64)
    np.cumsum(lengths, out=offsets[1:])
    rm = np.array(rensa.RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, NUM_PERM, SEED).to_rows())
    ds = MinHash.bulk([[x.tobytes() for x in d] for d in docs[:2 * datasketch_pairs]], num_perm=NUM_PERM, seed=SEED)
    est = {
        "ours": (ours[0::2] == ours[1::2]).mean(axis=1),
        "rensa": (rm[0::2] == rm[1::2]).mean(axis=1),
        "datasketch": np.array([ds[i].jaccard(ds[i + 1]) for i in range(0, len(ds), 2)]),
    }
    return {m: (float(e.mean()), float(e.std()), float((e >= THRESHOLD).mean())) for m, e in est.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--words", type=int, default=600)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--datasketch-n", type=int, default=3000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--estimator-pairs", type=int, default=3000)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--child", nargs=5, metavar=("METHOD", "CORPUS", "BATCH", "LIMIT", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        m, corpus, batch, limit, out = args.child
        child(m, Path(corpus), int(batch), int(limit), Path(out))
        return

    t = time.perf_counter()
    df, pairs = make_corpus(args.n, args.words)
    js = np.array([p["jaccard"] for p in pairs])
    doc_bytes = df["text"].str.len_bytes().mean()
    assert isinstance(doc_bytes, float)  # polars types a mean as any literal
    print(f"corpus: {args.n} docs, ~{args.words} words ({doc_bytes / 1000:.1f} kB) each, "
          f"{len(pairs)} planted variants ({(js >= THRESHOLD).sum()} with Jaccard >= {THRESHOLD}, "
          f"{(js < 0.75).sum()} near misses in [0.5, 0.75]); built in {time.perf_counter() - t:.0f} s")
    methods = args.methods.split(",")
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        corpus = Path(tmp) / "corpus.parquet"
        df.write_parquet(corpus)
        for i in range(args.repeats):
            # Rotate the order, so that no method always runs first or right after another.
            for m in methods[i % len(methods):] + methods[:i % len(methods)]:
                limit = args.datasketch_n if m == "datasketch" else args.n
                out = Path(tmp) / f"{m}.npy"
                r = subprocess.run([sys.executable, __file__, "--child", m, str(corpus), str(args.batch),
                                    str(limit), str(out)], capture_output=True, text=True, check=False)
                if r.returncode != 0:
                    print(f"{m}: failed\n{r.stderr[-2000:]}")
                    continue
                res = json.loads(r.stdout.strip().splitlines()[-1])
                res.update(score(np.load(out), pairs, res["docs"]))
                res["round"] = i
                runs[m].append(res)
    ours = {r["round"]: r["docs"] / r["seconds"] for r in runs.get("ours", [])}
    print(f"\n{args.repeats} rounds; medians; 'vs ours' is the median over rounds of docs/s over ours' docs/s "
          "in the same round")
    print(f"{'method':16s} {'docs':>6s} {'docs/s':>8s} {'vs ours':>8s} {'recall>=0.8':>12s} {'>=0.85':>7s} "
          f"{'false+':>6s} {'peak MiB':>9s}")
    for m, rs in runs.items():
        if not rs:
            continue
        dps = [r["docs"] / r["seconds"] for r in rs]
        rel = [d / ours[r["round"]] for d, r in zip(dps, rs) if r["round"] in ours]
        r0 = rs[0]
        print(f"{m:16s} {r0['docs']:6d} {statistics.median(dps):8.0f} "
              f"{(f'{statistics.median(rel):.2f}x' if rel else '-'):>8s} {r0['recall']:12.3f} {r0['recall85']:7.3f} "
              f"{r0['false_pos']:6d} {statistics.median(r['peak_over_base'] for r in rs) / 2**20:9.1f}")
    est = estimator_at_threshold(args.estimator_pairs, min(args.estimator_pairs, 300))
    print(f"\nJaccard estimates of {args.estimator_pairs} random set pairs with true Jaccard {THRESHOLD} "
          f"({NUM_PERM} values; datasketch: the first 300): "
          + "; ".join(f"{m} mean {mu:.4f} sd {sd:.4f}, {hi:.1%} >= {THRESHOLD}" for m, (mu, sd, hi) in est.items()))
    n_pos = runs["ours"][0]["n_pos"] if runs.get("ours") else "?"
    print(f"\n(recall over the {n_pos} planted pairs with true Jaccard >= {THRESHOLD} (datasketch: those in its "
          "prefix); false+: flagged documents that are unrelated or near misses below 0.75; peak MiB: peak RSS "
          "over the RSS after loading the corpus)")

if __name__ == "__main__":
    main()
