"""The paper's release: up to k correct samples per prompt, the shortest first, mixed by kind from a seed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from catalogs import Catalog, CatalogError
from catalogs.ingest import IngestOptions, ingest
from catalogs.query import sql
from releases.release import ReleaseRecipe, create_release


def build(root: Path) -> Catalog:
    """12 math prompts with 3 traces each (one wrong), and 8 chat prompts with one response each."""
    cat = Catalog(root / "cat")
    rows = []
    for i in range(12):
        for j in range(3):
            pad = "Let me re-check. " * (j + 1) * (i + 1)
            rows.append({"problem": f"Compute {i} + {i}.", "answer": str(2 * i),
                         "response": f"<think>{pad}{i}+{i}={2 * i + (j == 2)}</think> \\boxed{{{2 * i + (j == 2)}}}"})
    for i in range(8):
        rows.append({"problem": f"Write a haiku about the number {i}.", "kind": "non_reasoning",
                     "response": f"Number {i} / quiet in the row / counting ends"})
    path = root / "gens.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ingest(cat, path, IngestOptions(source="mix", generations=True, model="r1"))
    gens = cat.generations().join(cat.prompts().select("prompt_id", "kind", "answer"), on="prompt_id",
                                  suffix="_right")
    verdicts = []
    for g in gens.filter(gens["kind"] == "reasoning").iter_rows(named=True):
        ok = g["text"].endswith(f"\\boxed{{{g['answer_right']}}}")
        verdicts.append({"generation_id": g["generation_id"], "judge": "math_accuracy", "judge_version": "1",
                         "score": float(ok), "passed": ok, "reason": "correct" if ok else "wrong_answer"})
    cat.add_verdicts(verdicts)
    return cat


def test_per_prompt_cap_prefers_shortest_and_mixes_by_kind(tmp_path: Path) -> None:
    cat = build(tmp_path)
    m = create_release(cat, "r1", recipe=ReleaseRecipe(per_prompt=1, reasoning=10, non_reasoning=4, seed=3))
    assert m["mix"]["available"] == {"reasoning": 12, "non_reasoning": 8}
    assert m["mix"]["selected"] == {"reasoning": 10, "non_reasoning": 4}
    assert m["members"] == 14 and m["by_kind"] == {"non_reasoning": 4, "reasoning": 10}
    # One per prompt, and it is the shortest correct trace (j == 0).
    _, rows = sql(cat, "SELECT count(DISTINCT m.prompt_id), count(*), max(g.reasoning_chars) FILTER "
                       "(WHERE p.kind = 'reasoning') FROM release_members m JOIN generation_meta g USING "
                       "(generation_id) JOIN prompts p ON p.prompt_id = m.prompt_id WHERE release_name = 'r1'")
    assert rows[0][0] == rows[0][1] == 14
    _, shortest = sql(cat, "SELECT bool_and(g.text_chars = (SELECT min(g2.text_chars) FROM generation_meta g2 "
                           "WHERE g2.prompt_id = g.prompt_id)) FROM release_members m JOIN generation_meta g "
                           "USING (generation_id) WHERE release_name = 'r1'")
    assert shortest[0][0] is True
    # The manifest's counts agree with SQL over the catalog.
    _, by_source = sql(cat, "SELECT p.source, count(*) FROM release_members m JOIN prompts p USING (prompt_id) "
                            "WHERE release_name = 'r1' GROUP BY 1")
    assert dict(by_source) == m["by_source"]
    why = {e["why"]: e["generations"] for e in m["excluded"] if not e["failed_judges"]}
    assert sum(e["generations"] for e in m["excluded"]) == 44 - 14
    assert why["not_selected"] == 44 - 14 - 12  # 12 wrong answers failed; the rest were capped or not drawn


def test_same_catalog_and_recipe_same_release_byte_for_byte(tmp_path: Path) -> None:
    recipe = ReleaseRecipe(per_prompt=2, reasoning_share=0.75, prefer="random", seed=11)
    a, b = build(tmp_path / "a"), build(tmp_path / "b")
    ma, mb = create_release(a, "x", recipe=recipe), create_release(b, "x", recipe=recipe)
    assert ma["mix"]["selected"] == {"reasoning": 24, "non_reasoning": 8} and ma == mb
    q = "SELECT manifest, manifest_sha256 FROM releases"
    assert sql(a, q)[1] == sql(b, q)[1]
    q = "SELECT position, generation_id FROM release_members ORDER BY position"
    assert sql(a, q)[1] == sql(b, q)[1]
    other = create_release(a, "y", recipe=recipe.model_copy(update={"seed": 12, "reasoning_share": 0.5}))
    assert other["members_sha256"] != ma["members_sha256"]


def test_release_recipe_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="per_prompt"):
        ReleaseRecipe(per_prompt=0)
    with pytest.raises(ValidationError, match="extra"):
        ReleaseRecipe.model_validate({"per_promt": 2})
    with pytest.raises(ValidationError, match="reasoning_share"):
        ReleaseRecipe(reasoning_share=1.5)
    cat = build(tmp_path)
    with pytest.raises(CatalogError, match="either with --where or in the recipe"):
        create_release(cat, "z", where="true", recipe=ReleaseRecipe())


def test_mix_takes_all_of_the_scarcer_kind_and_rounds_the_other(tmp_path: Path) -> None:
    from releases.release import share_counts

    # 2 reasoning samples and plenty of others: 2 + 1 (round(0.75 * 3) = 2), never a "mix" of reasoning alone.
    assert share_counts(2, 100, 0.75) == (2, 1)
    assert share_counts(4, 100, 0.75) == (4, 1)
    assert share_counts(600_000, 500_000, 0.75) == (600_000, 200_000)
    assert share_counts(100, 2, 0.75) == (6, 2)
    for n_r in range(0, 40):
        for n_nr in range(0, 40):
            for share in (0.5, 0.6, 0.75, 0.9):
                r, nr = share_counts(n_r, n_nr, share)
                if not n_r or not n_nr:  # one kind missing: no mix at all
                    assert (r, nr) == (0, 0)
                    continue
                assert r <= n_r and nr <= n_nr and r == round((r + nr) * share), (n_r, n_nr, share, r, nr)
                # All of one kind, and the other as close to the share as a whole number of samples gets.
                if r == n_r:
                    assert abs(nr - r * (1 - share) / share) <= 0.5 + 1e-9 or nr == n_nr
                else:
                    assert nr == n_nr and abs(r - nr * share / (1 - share)) <= 0.5 + 1e-9
    # Through a release: the catalog's 24 reasoning and 16 non-reasoning eligible at 0.9 make 24 + 3.
    m = create_release(build(tmp_path), "scarce", recipe=ReleaseRecipe(per_prompt=2, reasoning_share=0.9))
    assert m["mix"]["available"]["reasoning"] == 24
    assert m["mix"]["selected"] == {"reasoning": 24, "non_reasoning": 3}
