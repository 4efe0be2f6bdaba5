"""The one \\boxed{} extractor (catalogs/boxed.py), shared by math_accuracy and the hygiene filter."""
from __future__ import annotations

from catalogs.boxed import all_boxed, last_boxed


def test_last_and_all_boxes() -> None:
    text = r"first \boxed{\frac{1}{2}}, then $\fbox{x^{2}}$ and \boxed {3} and \boxed 4."
    assert all_boxed(text) == [r"\frac{1}{2}", "x^{2}", "3", "4"]
    assert last_boxed(text) == "4"
    assert last_boxed(r"\boxed{a} \boxed{b}") == "b"


def test_depth_nesting_and_cut_boxes() -> None:
    deep = r"\boxed{\frac{\sqrt{\frac{1}{\left\{2\right\}}}}{3}}"
    assert all_boxed(deep) == [r"\frac{\sqrt{\frac{1}{\left\{2\right\}}}}{3}"]
    assert all_boxed(r"\boxed{\boxed{2}}") == [r"\boxed{2}"]  # outermost boxes only
    assert last_boxed(r"\boxed{\boxed{2}}") == "2"  # the innermost of the last nest
    assert all_boxed(r"\boxed{1} and \boxed{\frac{1}{") == ["1"]
    assert last_boxed(r"\boxed{\frac{1}{") is None
    assert last_boxed("no box") is None and all_boxed("") == []
    assert last_boxed(r"\boxedx") is None
