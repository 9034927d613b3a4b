"""Anatomic response criteria: RECIST 1.1 and mRECIST (viable, enhancing tumour) for the liver."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from ..errors import TheraquantError
from ..results import records_call
from ._criteria import EPS, at_least, finite, meta, operators, passes, thresholds as _thresholds, words
from ._result import Finding, ResponseResult, Rule

__all__ = ["Lesion", "recist", "mrecist", "NON_TARGET", "rules"]

#: allowed non-target assessments (None: no non-target lesion at baseline)
NON_TARGET = ("CR", "non-CR/non-PD", "PD", "NE")

_DIAMETER = {"RECIST": "sum of diameters (longest diameter; short axis for lymph nodes)",
             "mRECIST": "sum of viable (arterially enhancing) diameters"}
_CR = {"RECIST": "all non-nodal target lesions disappeared and every target lymph node has a "
                 "short axis < {node_normal_mm:g} mm: complete response",
       "mRECIST": "no intratumoural arterial enhancement remains in any target lesion (target lymph "
                  "nodes < {node_normal_mm:g} mm short axis): complete response"}


def rules(name: str, thr: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Rule id -> (category, sentence) of RECIST 1.1 or mRECIST with thresholds `thr` filled in."""
    p = "recist" if name == "RECIST" else "mrecist"
    s = _DIAMETER[name]
    ops = operators(name)
    pd_abs = (f" and {words(ops['pd_absolute_mm'])} {thr['pd_absolute_mm']:g} mm" if thr["pd_absolute_mm"] > 0 else "")
    pd = f"{words(ops['pd_increase'])} {100 * thr['pd_increase']:g} %{pd_abs} over the nadir"
    out = {
        "target.pd": ("PD", f"the {s} increased by {pd}: progressive disease"),
        "target.pd_partial": ("PD", f"target lesion(s) not assessed, but the {s} of the assessed "
                                    f"ones already increased by {pd}: progressive disease"),
        "target.ne_missing": ("NE", "target lesion(s) not assessed at follow-up and the assessed "
                                    "ones show no progression: not evaluable"),
        "target.cr": ("CR", _CR[name]),
        "target.pr": ("PR", f"the {s} decreased by {words(ops['pr_decrease'])} {100 * thr['pr_decrease']:g} % from "
                            "baseline: partial response"),
        "target.sd": ("SD", "neither enough shrinkage for PR nor enough increase for PD: stable "
                            "disease"),
        "lesion.not_measurable": (
            "NE", f"the lesion is below the measurability limit at baseline "
                  f"({thr['lesion_measurable_mm']:g} mm; lymph nodes {thr['node_measurable_mm']:g} mm "
                  "short axis): not evaluable as a target"),
        "non_target_pd": ("PD", "unequivocal progression of non-target lesions: progressive disease"),
        "new_lesion": ("PD", "new lesion(s) at follow-up: progressive disease"),
        "target_cr_non_target_open": (
            "PR", "target lesions in complete response but non-target lesions persist "
                  "(non-CR/non-PD) or were not all evaluated: partial response"),
        "non_target.cr": ("CR", "no target lesions; all non-target lesions disappeared (nodes "
                                "normal): complete response"),
        "non_target.non_cr_non_pd": ("non-CR/non-PD", "no target lesions; non-target lesions "
                                     "persist without unequivocal progression: non-CR/non-PD"),
        "non_target.ne": ("NE", "no target lesions and the non-target lesions were not "
                                "evaluated: not evaluable"),
    }
    return {f"{p}.{k}": v for k, v in out.items()}


@dataclass(frozen=True, slots=True)
class Lesion:
    """One lesion measurement on one scan (RECIST 1.1 / mRECIST).

    Attributes
    ----------
    id : str
        Lesion identifier, the same on every scan (e.g. ``"liver-seg8"``).
    organ : str
        Organ, for the at-most-2-per-organ rule (give every lymph node the same
        organ, e.g. ``"lymph node"``, to count them as one organ).
    diameter_mm : float
        The criteria's measurement, mm, >= 0: longest diameter (RECIST 1.1),
        short axis for lymph nodes, viable (arterially enhancing) longest diameter
        for mRECIST. 0 means the lesion disappeared; a lesion still present but too
        small to measure is recorded as 5 mm (RECIST 1.1 Appendix I). Fragments of a
        split lesion are summed into the original lesion's value; lesions that merge
        give the merged diameter to one of them and 0 to the others.
    is_node : bool
        Lymph node (measured by short axis; normal below 10 mm).

    Examples
    --------
    >>> from theraquant.response import Lesion
    >>> Lesion("L1", "liver", 32.0)
    Lesion(id='L1', organ='liver', diameter_mm=32.0, is_node=False)
    """

    id: str
    organ: str
    diameter_mm: float
    is_node: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise TheraquantError(f"Lesion id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.organ, str):
            raise TheraquantError(f"Lesion {self.id!r}: organ must be a string, got {self.organ!r}")
        d = finite(self.diameter_mm, f"Lesion {self.id!r}: diameter_mm", unit="mm",
                   fix="give 0 for a lesion that disappeared and leave a lesion that was not "
                       "assessed out of the follow-up")
        object.__setattr__(self, "diameter_mm", d)
        if not isinstance(self.is_node, (bool, np.bool_)):
            raise TheraquantError(f"Lesion {self.id!r}: is_node must be True or False, got {self.is_node!r}")
        object.__setattr__(self, "is_node", bool(self.is_node))


# --------------------------------------------------------------------------- input parsing
def _from_frame(df: Any, name: str, *, need_organ: bool) -> list[Lesion]:
    need = ["id", "diameter_mm"] + (["organ"] if need_organ else [])
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise TheraquantError(
            f"{name} DataFrame lacks column(s) {missing}; it has {list(df.columns)} and needs "
            "id, organ, diameter_mm (mm) and optionally is_node")
    organ = df["organ"] if "organ" in df.columns else [""] * len(df)
    node = df["is_node"] if "is_node" in df.columns else [False] * len(df)
    return [Lesion(str(i), str(o), d, bool(n))
            for i, o, d, n in zip(df["id"], organ, df["diameter_mm"], node)]


def _as_lesions(obj: Any, name: str, *, baseline: bool) -> list[Lesion]:
    if hasattr(obj, "columns") and hasattr(obj, "__len__"):
        lesions = _from_frame(obj, name, need_organ=baseline)
    elif isinstance(obj, Mapping) and not baseline:
        lesions = [Lesion(str(k), "", v) for k, v in obj.items()]
    elif isinstance(obj, Sequence) and not isinstance(obj, str):
        lesions = list(obj)
        bad = [x for x in lesions if not isinstance(x, Lesion)]
        if bad:
            raise TheraquantError(
                f"{name} must hold Lesion objects, got {type(bad[0]).__name__} ({bad[0]!r}); "
                "build them as Lesion(id, organ, diameter_mm, is_node)")
    else:
        kinds = "a sequence of Lesion or a DataFrame" + ("" if baseline else ", or a mapping id -> mm")
        raise TheraquantError(f"{name} must be {kinds}, got {type(obj).__name__}")
    seen: set[str] = set()
    for les in lesions:
        if les.id in seen:
            raise TheraquantError(f"{name} has lesion id {les.id!r} twice; ids must be unique per scan")
        seen.add(les.id)
    return lesions


def _select_targets(lesions: list[Lesion], thr: Mapping[str, Any], select: bool, name: str
                    ) -> tuple[list[Lesion], list[Finding]]:
    findings: list[Finding] = []

    def limit(les: Lesion) -> float:
        return thr["node_measurable_mm"] if les.is_node else thr["lesion_measurable_mm"]

    small = [les for les in lesions if les.diameter_mm < limit(les) - EPS]
    if small and not select:
        les = small[0]
        how = "short axis of a node" if les.is_node else "longest diameter"
        raise TheraquantError(
            f"baseline target {les.id!r} measures {les.diameter_mm:g} mm, below the {name} "
            f"measurability limit of {limit(les):g} mm ({how}); "
            "record it as a non-target lesion (non_target=...) or pass select_targets=True to "
            "drop unmeasurable lesions")
    small_ids = {les.id for les in small}
    cand = [les for les in lesions if les.id not in small_ids]
    by_organ: dict[str, int] = {}
    for les in cand:
        by_organ[les.organ] = by_organ.get(les.organ, 0) + 1
    crowded = {o: n for o, n in by_organ.items() if n > thr["max_targets_per_organ"]}
    if not select and (crowded or len(cand) > thr["max_targets"]):
        what = (f"{len(cand)} target lesions (at most {thr['max_targets']})" if len(cand) > thr["max_targets"]
                else f"{crowded} target lesions per organ (at most {thr['max_targets_per_organ']})")
        raise TheraquantError(
            f"baseline has {what}; choose the targets yourself, or pass select_targets=True to keep "
            "the largest lesions per organ, then the largest overall")
    if select:
        ranked = sorted(cand, key=lambda les: -les.diameter_mm)  # stable: input order among ties
        kept: list[Lesion] = []
        per: dict[str, int] = {}
        for les in ranked:
            if per.get(les.organ, 0) < thr["max_targets_per_organ"] and len(kept) < thr["max_targets"]:
                kept.append(les)
                per[les.organ] = per.get(les.organ, 0) + 1
        kept_ids = {les.id for les in kept}
        dropped = [les.id for les in lesions if les.id not in kept_ids]
        if dropped:
            findings.append(Finding(
                20, f"{name.lower()}.target_selection",
                f"kept targets {[les.id for les in lesions if les.id in kept_ids]}, not used as targets "
                f"{dropped} (unmeasurable, or beyond {thr['max_targets_per_organ']} per organ / "
                f"{thr['max_targets']} in all)",
                "follow the dropped lesions as non-target lesions"))
        cand = [les for les in lesions if les.id in kept_ids]  # keep input order
    return cand, findings


# --------------------------------------------------------------------------- vectorised core
def _target_codes(base: NDArray, nadir: NDArray, fu: NDArray, all_cr: NDArray, missing: NDArray,
                  thr: Mapping[str, Any], prefix: str) -> NDArray:
    """Target-lesion rule id per element: sums (n,) in mm, flags (n,) bool."""
    ops = operators("RECIST" if prefix == "recist" else "mRECIST")
    with np.errstate(invalid="ignore", divide="ignore"):
        d_nadir = fu - nadir
        rel_nadir = np.where(nadir > 0, d_nadir / np.where(nadir > 0, nadir, 1.0),
                             np.where(d_nadir > EPS, np.inf, 0.0))
        pd = (passes(rel_nadir, ops["pd_increase"], thr["pd_increase"])
              & passes(d_nadir, ops["pd_absolute_mm"], thr["pd_absolute_mm"]))
        rel_base = (fu - base) / base
        conds = [pd & missing, missing, pd, all_cr, passes(-rel_base, ops["pr_decrease"], thr["pr_decrease"])]
    ids = [f"{prefix}.target.{k}" for k in ("pd_partial", "ne_missing", "pd", "cr", "pr")]
    return np.select(conds, ids, default=f"{prefix}.target.sd")


# --------------------------------------------------------------------------- engine
def _assess(name: str, baseline: Any, followup: Any, *, nadir_mm: float | None, new_lesions: bool,
            non_target: str | None, select_targets: bool, thresholds: Mapping[str, Any] | None
            ) -> ResponseResult:
    thr = _thresholds(name, thresholds)
    prefix = "recist" if name == "RECIST" else "mrecist"
    table = rules(name, thr)
    if not isinstance(new_lesions, (bool, np.bool_)):
        raise TheraquantError(f"new_lesions must be True or False, got {new_lesions!r}")
    if non_target is not None and non_target not in NON_TARGET:
        raise TheraquantError(
            f"non_target must be one of {list(NON_TARGET)} or None (no non-target lesions), "
            f"got {non_target!r}")
    base_all = _as_lesions(baseline, "baseline", baseline=True)
    fu = {les.id: les.diameter_mm for les in _as_lesions(followup, "followup", baseline=False)}
    targets, findings = _select_targets(base_all, thr, bool(select_targets), name)
    base_ids = {les.id for les in base_all}
    unknown = sorted(set(fu) - base_ids)
    if unknown:
        raise TheraquantError(
            f"followup has lesion id(s) {unknown} that are not baseline lesions {sorted(base_ids)}; "
            "report new lesions with new_lesions=True and keep each lesion's baseline id")
    if not targets and non_target is None:
        raise TheraquantError(
            f"baseline has no target lesion and non_target is None; {name} needs measurable disease: "
            "give target lesions, or non_target=... for a patient with non-target disease only")

    values: dict[str, Any] = {"n_targets": len(targets), "targets": tuple(les.id for les in targets)}
    target_rid: str | None = None
    if targets:
        base_sum = float(sum(les.diameter_mm for les in targets))
        if nadir_mm is None:
            nadir = base_sum
        else:
            nadir = finite(nadir_mm, "nadir_mm", unit="mm")
            if nadir > base_sum + EPS:
                raise TheraquantError(
                    f"nadir_mm={nadir_mm!r} exceeds the baseline {_DIAMETER[name]} ({base_sum:g} mm); "
                    "the nadir is the smallest sum recorded since treatment started, baseline "
                    "included, over the same target lesions")
        assessed = [les for les in targets if les.id in fu]
        missing = tuple(les.id for les in targets if les.id not in fu)
        fu_sum = float(sum(fu[les.id] for les in assessed))
        nodes = [fu[les.id] for les in assessed if les.is_node]
        solid = [fu[les.id] for les in assessed if not les.is_node]
        all_cr = (not missing and all(d <= EPS for d in solid)
                  and all(d < thr["node_normal_mm"] - EPS for d in nodes))
        target_rid = str(_target_codes(
            np.array([base_sum]), np.array([nadir]), np.array([fu_sum]), np.array([all_cr]),
            np.array([bool(missing)]), thr, prefix)[0])
        values.update(
            baseline_sum_mm=base_sum, nadir_mm=nadir, followup_sum_mm=fu_sum,
            change_from_baseline_fraction=(fu_sum - base_sum) / base_sum,
            change_from_nadir_mm=fu_sum - nadir,
            change_from_nadir_fraction=((fu_sum - nadir) / nadir) if nadir > 0 else (
                math.inf if fu_sum - nadir > EPS else 0.0),
            missing_targets=missing,
            largest_followup_node_mm=max(nodes) if nodes else None,
            remaining_non_nodal_targets=sum(d > EPS for d in solid),
        )
    target_cat = table[target_rid][0] if target_rid else None
    values.update(target_response=target_cat, target_rule=target_rid, non_target=non_target,
                  new_lesions=bool(new_lesions))

    # overall response: RECIST 1.1 Table 1 (targets) and Table 2 (non-target disease only)
    if target_cat == "PD":
        rid = target_rid
    elif non_target == "PD":
        rid = f"{prefix}.non_target_pd"
    elif new_lesions:
        rid = f"{prefix}.new_lesion"
    elif target_rid is None:
        rid = {"CR": f"{prefix}.non_target.cr", "non-CR/non-PD": f"{prefix}.non_target.non_cr_non_pd",
               "NE": f"{prefix}.non_target.ne"}[non_target]
    elif target_cat == "CR" and non_target in ("non-CR/non-PD", "NE"):
        rid = f"{prefix}.target_cr_non_target_open"
    else:
        rid = target_rid
    category, text = table[rid]
    name_, version, doi = meta(name)
    return ResponseResult(category, Rule(rid, text), values, name_, version, thr, "patient", doi,
                          tuple(findings))


_PARAMS_DOC = """
    Parameters
    ----------
    baseline : sequence of Lesion, or DataFrame
        Baseline lesions. A DataFrame has columns ``id``, ``organ``, ``diameter_mm``
        (mm) and optionally ``is_node`` (bool). All must be measurable target lesions
        (>= 10 mm, lymph nodes >= 15 mm short axis), at most 5 and at most 2 per
        organ, unless `select_targets` is True.
    followup : sequence of Lesion, DataFrame, or mapping of lesion id to mm
        Follow-up measurements of the baseline lesions, by the same ids, mm. A
        lesion that disappeared is 0 mm; a target left out was not assessed (the
        target response is then NE, unless the assessed ones already show PD).
    nadir_mm : float, optional
        Smallest sum of diameters recorded since treatment started (baseline
        included) over the same targets, mm. Default: the baseline sum.
    new_lesions : bool
        New lesions at follow-up (-> PD).
    non_target : {"CR", "non-CR/non-PD", "PD", "NE"} or None
        Assessment of the non-target lesions; None when there were none at baseline.
        "PD" means unequivocal progression.
    select_targets : bool
        False (default): more than 5 targets, more than 2 per organ or an
        unmeasurable target raise :class:`~theraquant.TheraquantError`. True: drop
        unmeasurable lesions, keep the largest 2 per organ, then the largest 5 (ties
        in input order); the dropped ids are reported in ``findings``.
    thresholds : mapping, optional
        Overrides of ``criteria(...)["thresholds"]`` (fractions positive, mm in mm).

    Returns
    -------
    ResponseResult
        Overall response by RECIST 1.1 Table 1 (Table 2 without target lesions):
        ``category`` in {"CR", "PR", "SD", "PD", "NE", "non-CR/non-PD"}; ``values``
        has the sums (``baseline_sum_mm``, ``nadir_mm``, ``followup_sum_mm``), the
        changes (``change_from_baseline_fraction``, ``change_from_nadir_mm``,
        ``change_from_nadir_fraction``), the target response and rule, the
        non-target assessment and new lesions.
"""


@records_call("theraquant.response.recist")
def recist(
    baseline: Sequence[Lesion] | Any,
    followup: Sequence[Lesion] | Mapping[str, float] | Any,
    *,
    nadir_mm: float | None = None,
    new_lesions: bool = False,
    non_target: str | None = None,
    select_targets: bool = False,
    thresholds: Mapping[str, Any] | None = None,
) -> ResponseResult:
    return _assess("RECIST", baseline, followup, nadir_mm=nadir_mm, new_lesions=new_lesions,
                   non_target=non_target, select_targets=select_targets, thresholds=thresholds)


recist.__doc__ = """Overall response of one patient at one follow-up by RECIST 1.1.

    Targets are measured by longest diameter, lymph nodes by short axis. Target
    response: PD when the sum of diameters rose at least 20 % **and** at least 5 mm
    over the nadir; CR when every non-nodal target disappeared and every target node
    is < 10 mm short axis; PR when the sum fell at least 30 % from baseline; else SD.
    Boundaries are inclusive ("at least", as Eisenhauer et al. word PR and PD; criteria.json
    ``operators``/``quotes``) with a 1e-9 tolerance. PD is checked
    before CR.
""" + _PARAMS_DOC + """
    References
    ----------
    .. [1] Eisenhauer EA, Therasse P, Bogaerts J, et al. New response evaluation
       criteria in solid tumours: revised RECIST guideline (version 1.1). Eur J Cancer
       2009;45:228-247. doi:10.1016/j.ejca.2008.10.026

    Examples
    --------
    >>> from theraquant.response import Lesion, recist
    >>> base = [Lesion("L1", "liver", 40.0), Lesion("L2", "liver", 30.0),
    ...         Lesion("N1", "lymph node", 20.0, is_node=True)]
    >>> r = recist(base, {"L1": 25.0, "L2": 20.0, "N1": 15.0})
    >>> r.category, r.rule.id, r.values["baseline_sum_mm"], r.values["followup_sum_mm"]
    ('PR', 'recist.target.pr', 90.0, 60.0)
    >>> recist(base, {"L1": 0.0, "L2": 0.0, "N1": 9.0}).category  # node < 10 mm
    'CR'
    >>> r = recist(base, {"L1": 15.0, "L2": 10.0, "N1": 5.0}, nadir_mm=25.0)
    >>> r.category, r.values["change_from_nadir_mm"]  # +20 % and +5 mm over the nadir
    ('PD', 5.0)
"""


@records_call("theraquant.response.mrecist")
def mrecist(
    baseline: Sequence[Lesion] | Any,
    followup: Sequence[Lesion] | Mapping[str, float] | Any,
    *,
    nadir_mm: float | None = None,
    new_lesions: bool = False,
    non_target: str | None = None,
    select_targets: bool = False,
    thresholds: Mapping[str, Any] | None = None,
) -> ResponseResult:
    return _assess("mRECIST", baseline, followup, nadir_mm=nadir_mm, new_lesions=new_lesions,
                   non_target=non_target, select_targets=select_targets, thresholds=thresholds)


mrecist.__doc__ = """Overall response of one patient at one follow-up by mRECIST (hepatocellular carcinoma).

    ``diameter_mm`` of each :class:`Lesion` is the **viable** tumour diameter: the
    longest diameter of the arterially enhancing part, not crossing necrosis (0 when
    no enhancement remains). Target response: CR when no intratumoural arterial
    enhancement remains in any target (target lymph nodes < 10 mm short axis, as in
    RECIST 1.1); PR when the sum of viable diameters fell at least 30 % from
    baseline; PD when it rose at least 20 % over the nadir; else SD. mRECIST was
    written on RECIST 1.0 and has **no 5 mm absolute rule** (``pd_absolute_mm`` is 0;
    pass ``thresholds={"pd_absolute_mm": 5.0}`` to add it). The overall response
    combines target, non-target and new lesions as RECIST 1.1 does; the
    mRECIST-specific readings (a new lesion is >= 1 cm with the typical HCC
    vascular pattern; malignant portal vein thrombosis, or an effusion or ascites
    proven malignant, is non-target progression) are passed as `new_lesions` and
    `non_target`.
""" + _PARAMS_DOC + """
    References
    ----------
    .. [1] Lencioni R, Llovet JM. Modified RECIST (mRECIST) assessment for
       hepatocellular carcinoma. Semin Liver Dis 2010;30:52-60.
       doi:10.1055/s-0030-1247132

    Examples
    --------
    >>> from theraquant.response import Lesion, mrecist
    >>> base = [Lesion("HCC1", "liver", 50.0), Lesion("HCC2", "liver", 20.0)]
    >>> r = mrecist(base, {"HCC1": 0.0, "HCC2": 0.0})
    >>> r.category, r.rule.id
    ('CR', 'mrecist.target.cr')
    >>> r = mrecist(base, {"HCC1": 4.0, "HCC2": 20.0}, nadir_mm=20.0)  # +20 %, only +4 mm
    >>> r.category, r.values["change_from_nadir_mm"]  # PD: mRECIST has no 5 mm rule
    ('PD', 4.0)
"""
