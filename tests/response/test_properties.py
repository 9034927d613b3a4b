"""Property tests: a larger follow-up value never gives a better response category.

Holds by construction of every criterion here (thresholds on the follow-up minus
baseline/nadir difference), for any baseline; hypothesis searches for a counterexample.
"""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from theraquant.response import Lesion, eortc, mrecist, percist, recist

RANK = {"CR": 0, "CMR": 0, "PR": 1, "PMR": 1, "SD": 2, "SMD": 2, "PD": 3, "PMD": 3}
values = st.floats(0.0, 50.0, allow_nan=False).map(lambda x: round(x, 1))


@settings(max_examples=100, deadline=None)
@given(b=st.floats(0.5, 30.0).map(lambda x: round(x, 1)), f1=values, f2=values)
def test_pet_monotone(b, f1, f2):
    lo, hi = sorted((f1, f2))
    assert RANK[percist(b, lo).category] <= RANK[percist(b, hi).category]
    assert RANK[eortc(b, lo).category] <= RANK[eortc(b, hi).category]


@settings(max_examples=100, deadline=None)
@given(b=st.floats(10.0, 100.0).map(lambda x: round(x, 1)), frac=st.floats(0.0, 1.0),
       f1=values, f2=values, node=st.booleans())
def test_recist_monotone(b, frac, f1, f2, node):
    b = max(b, 15.0) if node else b
    nadir = round(b * frac, 1)
    lo, hi = sorted((f1, f2))
    base = [Lesion("L", "liver", b, node)]
    for fn in (recist, mrecist):
        worse = fn(base, {"L": hi}, nadir_mm=nadir).category
        assert RANK[fn(base, {"L": lo}, nadir_mm=nadir).category] <= RANK[worse]
