"""PET response criteria: PERCIST 1.0 and EORTC 1999, at lesion and at patient level."""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from ..errors import TheraquantError
from ..results import records_call
from ._criteria import EPS, at_least, finite, meta, operators, passes, thresholds as _thresholds, words
from ._result import Finding, ResponseResult, Rule

__all__ = ["percist", "eortc", "percist_rules", "eortc_rules"]

def percist_rules(thr: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """PERCIST rule id -> (category, sentence), with thresholds `thr` filled in."""
    r, a = 100 * thr["relative_change"], thr["absolute_change_SUL"]
    ops = operators("PERCIST")
    return {
        "percist.pmd_new_lesion": (
            "PMD", "a new FDG-avid lesion typical of cancer: progressive metabolic disease"),
        "percist.pmd_non_target": (
            "PMD", "unequivocal progression of FDG-avid non-target lesions: progressive metabolic "
                   "disease"),
        "percist.ne_not_measurable": (
            "NE", f"the hottest baseline lesion is below the measurability threshold "
                  f"({thr['liver_factor']:g} x liver mean + {thr['liver_sd_factor']:g} SD, or "
                  f"{thr['blood_pool_factor']:g} x blood-pool mean + {thr['blood_pool_sd_factor']:g} SD): "
                  "not evaluable"),
        "percist.cmr": (
            "CMR", "uptake resolved to the reference mean or below (no residual FDG-avid lesion): "
                   "complete metabolic response"),
        "percist.pmd": (
            "PMD", f"SULpeak increased by {words(ops['pmd_relative'])} {r:g} % and "
                   f"{words(ops['pmd_absolute'])} {a:g} SUL units: "
                   "progressive metabolic disease"),
        "percist.pmd_tlg": (
            "PMD", f"TLG increased by {words(ops['pmd_tlg'])} {100 * thr['TLG_increase_for_PMD']:g} % without a "
                   "decline in SULpeak: progressive metabolic disease"),
        "percist.pmr": (
            "PMR", f"SULpeak decreased by {words(ops['pmr_relative'])} {r:g} % and "
                   f"{words(ops['pmr_absolute'])} {a:g} SUL units: "
                   "partial metabolic response"),
        "percist.smd": (
            "SMD", "neither complete or partial response nor progression: stable metabolic disease"),
    }


def eortc_rules(thr: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """EORTC rule id -> (category, sentence), with thresholds `thr` filled in."""
    ops = operators("EORTC")
    return {
        "eortc.pmd_new_lesion": (
            "PMD", "new FDG-avid metastases: progressive metabolic disease"),
        "eortc.cmr": (
            "CMR", "complete resolution of FDG uptake (SUV at background or below): "
                   "complete metabolic response"),
        "eortc.pmd": (
            "PMD", f"SUV increased by {words(ops['pmd_increase'])} {100 * thr['PMD_increase']:g} % in the baseline "
                   "tumour region: progressive metabolic disease"),
        "eortc.pmd_extent": (
            "PMD", f"extent of uptake increased by {words(ops['pmd_extent'])} "
                   f"{100 * thr['extent_increase_longest_dimension']:g} % in the longest dimension: "
                   "progressive metabolic disease"),
        "eortc.pmr": (
            "PMR", f"SUV decreased by {words(ops['pmr_after_more_cycles'])} "
                   f"{100 * thr['PMR_after_more_cycles']:g} % after more than one cycle "
                   f"({words(ops['pmr_after_1_cycle'])} {100 * thr['PMR_after_1_cycle']:g} % after one cycle): "
                   "partial metabolic response"),
        "eortc.smd": (
            "SMD", "neither complete or partial response nor progression: stable metabolic disease"),
    }


# --------------------------------------------------------------------------- vectorised cores
def _percist_codes(b: NDArray, f: NDArray, resolved: NDArray, meas_thr: NDArray,
                   fu_ref_mean: NDArray, new: NDArray, tlg_b: NDArray, tlg_f: NDArray,
                   thr: Mapping[str, Any], non_target: NDArray | None = None) -> NDArray:
    """PERCIST rule id per element (all arrays (n,), NaN where a value is absent)."""
    ops = operators("PERCIST")
    with np.errstate(invalid="ignore", divide="ignore"):
        d = f - b
        rel = d / b
        tlg_rel = (tlg_f - tlg_b) / tlg_b
        conds = [
            new,
            np.zeros_like(new) if non_target is None else non_target,
            ~np.isnan(meas_thr) & ~at_least(b, meas_thr, True),
            resolved | (f <= fu_ref_mean + EPS),
            (passes(rel, ops["pmd_relative"], thr["relative_change"])
             & passes(d, ops["pmd_absolute"], thr["absolute_change_SUL"])),
            passes(tlg_rel, ops["pmd_tlg"], thr["TLG_increase_for_PMD"]) & (f >= b - EPS),
            (passes(-rel, ops["pmr_relative"], thr["relative_change"])
             & passes(-d, ops["pmr_absolute"], thr["absolute_change_SUL"])),
        ]
    ids = ["percist.pmd_new_lesion", "percist.pmd_non_target", "percist.ne_not_measurable",
           "percist.cmr", "percist.pmd", "percist.pmd_tlg", "percist.pmr"]
    return np.select(conds, ids, default="percist.smd")


def _eortc_codes(b: NDArray, f: NDArray, resolved: NDArray, background: NDArray, new: NDArray,
                 ext_b: NDArray, ext_f: NDArray, after_one_cycle: bool,
                 thr: Mapping[str, Any]) -> NDArray:
    """EORTC rule id per element (all arrays (n,), NaN where a value is absent)."""
    ops = operators("EORTC")
    key = "PMR_after_1_cycle" if after_one_cycle else "PMR_after_more_cycles"
    pmr, pmr_op = thr[key], ops[key.lower()]
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = (f - b) / b
        ext_rel = (ext_f - ext_b) / ext_b
        conds = [
            new,
            resolved | (f <= background + EPS),
            passes(rel, ops["pmd_increase"], thr["PMD_increase"]),
            passes(ext_rel, ops["pmd_extent"], thr["extent_increase_longest_dimension"]),
            passes(-rel, pmr_op, pmr),
        ]
    ids = ["eortc.pmd_new_lesion", "eortc.cmr", "eortc.pmd", "eortc.pmd_extent", "eortc.pmr"]
    return np.select(conds, ids, default="eortc.smd")


# --------------------------------------------------------------------------- input parsing
def _is_collection(x: Any) -> bool:
    if hasattr(x, "iloc"):  # pandas Series: lesion id index -> value
        return True
    return isinstance(x, (Mapping, Sequence, np.ndarray)) and not isinstance(x, (str, bytes))


def _lesion_values(x: Any, name: str, unit: str) -> dict[str, float]:
    """A patient-level collection as {lesion id: value}; sequences get ids "0", "1", ..."""
    if isinstance(x, Mapping) or hasattr(x, "iloc"):
        items = [(str(k), v) for k, v in x.items()]
    else:
        arr = np.asarray(x)
        if arr.ndim != 1:
            raise TheraquantError(
                f"{name} must be a number, a mapping of lesion id to value or a 1-D sequence, "
                f"got an array of shape {arr.shape}")
        items = [(str(i), v) for i, v in enumerate(arr.tolist())]
    out: dict[str, float] = {}
    for k, v in items:
        out[k] = finite(v, f"{name}[{k!r}]", unit=unit, minimum=0.0,
                        fix="remove lesions that were not measured")
    return out


def _hottest(values: Mapping[str, float]) -> tuple[str, float]:
    key = max(values, key=lambda k: values[k])  # first of ties, in the given order
    return key, values[key]


def _opt(x: Any, name: str, unit: str, *, positive: bool = False) -> float | None:
    if x is None:
        return None
    return finite(x, name, unit=unit, minimum=0.0, strict_min=positive)


def _check_strict(strict: str) -> None:
    if strict not in ("warn", "raise", "ignore"):
        raise TheraquantError(
            f"strict must be 'warn', 'raise' or 'ignore', got {strict!r}; "
            "'warn' records findings and emits a UserWarning for warnings, 'raise' raises them")


def _handle_findings(findings: list[Finding], strict: str) -> None:
    serious = [f for f in findings if f.level >= 30]
    if not serious or strict == "ignore":
        return
    text = "; ".join(f"{f.message} ({f.fix})" if f.fix else f.message for f in serious)
    if strict == "raise":
        raise TheraquantError(text)
    warnings.warn(text, UserWarning, stacklevel=3)


def _a(x: float | None) -> NDArray:
    return np.array([math.nan if x is None else x], dtype=np.float64)


# --------------------------------------------------------------------------- PERCIST
@records_call("theraquant.response.percist")
def percist(
    baseline_sulpeak: float | Mapping[str, float] | Sequence[float],
    followup_sulpeak: float | Mapping[str, float] | Sequence[float] | None,
    *,
    reference_mean: float | None = None,
    reference_sd: float | None = None,
    followup_reference_mean: float | None = None,
    reference: str = "liver",
    new_lesions: bool = False,
    non_target_progression: bool = False,
    baseline_tlg: float | None = None,
    followup_tlg: float | None = None,
    thresholds: Mapping[str, Any] | None = None,
    strict: str = "warn",
) -> ResponseResult:
    """Grade a metabolic response by PERCIST 1.0 (CMR, PMR, SMD, PMD or NE).

    At **lesion level** (two numbers: one lesion's baseline and follow-up SULpeak, as
    the radioembolization study used it) or at **patient level** (two collections of
    per-lesion SULpeak: the hottest lesion of each scan is compared, and it may be a
    different lesion at follow-up, PERCIST's single-target rule).

    Parameters
    ----------
    baseline_sulpeak : float, or mapping of lesion id to float, or sequence of float
        SULpeak at baseline, SUL units (g/mL, SUV normalised to lean body mass), > 0.
        A number grades one lesion; a mapping (or pandas Series indexed by lesion id)
        or 1-D sequence (ids ``"0"``, ``"1"``, ...) grades a patient.
    followup_sulpeak : float, mapping, sequence or None
        SULpeak at follow-up, SUL units, of the same kind as `baseline_sulpeak`.
        ``None`` (or an empty collection) means no FDG-avid lesion is left.
    reference_mean, reference_sd : float, optional
        Baseline reference region SUL mean and standard deviation, SUL units: the
        3 cm sphere in the normal right liver lobe, or with ``reference="blood_pool"``
        the 1 x 2 cm cylinder in the descending aorta. When given, the hottest
        baseline lesion must reach the measurability threshold
        ``1.5 x mean + 2 SD`` (liver) or ``2 x mean + 2 SD`` (blood pool), else the
        result is ``"NE"``. Without them measurability is not checked (a finding says so).
    followup_reference_mean : float, optional
        Follow-up reference SUL mean, SUL units. Used for complete response (the
        hottest follow-up lesion at or below it; the baseline `reference_mean` is
        used when it is not given) and for the comparability check:
        a change of 20 % or more, or 0.3 SUL or more, from `reference_mean` is
        reported as a warning finding.
    reference : {"liver", "blood_pool"}
        Reference region (blood pool when the liver is abnormal).
    new_lesions : bool
        New FDG-avid lesions typical of cancer at follow-up (-> PMD).
    non_target_progression : bool
        Unequivocal progression of FDG-avid non-target lesions, as read (-> PMD).
    baseline_tlg, followup_tlg : float, optional
        Total lesion glycolysis (SULmean x metabolic volume), g (SUL x mL). When both
        are given the optional TLG rule applies: an increase of at least 75 % without
        a decline in SULpeak is PMD.
    thresholds : mapping, optional
        Overrides of the PERCIST thresholds in ``criteria("PERCIST")["thresholds"]``,
        e.g. ``{"absolute_change_SUL": 0.5}``.
    strict : {"warn", "raise", "ignore"}
        What a warning finding (unstable reference) does besides being recorded in
        ``result.findings``: emit a ``UserWarning``, raise ``TheraquantError``, or nothing.

    Returns
    -------
    ResponseResult
        ``category`` in {"CMR", "PMR", "SMD", "PMD", "NE"}; ``values`` holds
        ``baseline_sulpeak``, ``followup_sulpeak``, ``change_sul`` (SUL units),
        ``change_fraction`` (-0.35 = 35 % decrease), the measurability threshold and
        reference values, the lesion ids at patient level (``same_lesion``) and TLG.

    Notes
    -----
    Rules in order, the first that holds decides: new lesion -> PMD; unequivocal
    non-target progression -> PMD; baseline below
    measurability -> NE; follow-up at or below the reference mean (or no lesion
    left) -> CMR; change > +30 % and > +0.8 SUL -> PMD; TLG > +75 % without SUL
    decline -> PMD; change <= -30 % and <= -0.8 SUL -> PMR; otherwise SMD.
    Each boundary has the comparison Wahl et al. word it with (criteria.json
    ``operators``/``quotes``): PMR "a minimum of 30 %" and "at least 0.8 SUL units"
    (exactly -30 % is PMR), PMD "> 30 %" and "> 0.8 SUL units" (exactly +30 %, e.g.
    10.0 -> 13.0, is SMD). Changes are compared with an absolute tolerance of 1e-9. Patient level follows PERCIST's
    single-target rule only: the other lesions (PERCIST's "no > 30 % increase in
    other lesions" for PMR, unequivocal non-target progression) are the reader's
    call, passed as `non_target_progression` when it is unequivocal.

    References
    ----------
    .. [1] Wahl RL, Jacene H, Kasamon Y, Lodge MA. From RECIST to PERCIST: evolving
       considerations for PET response criteria in solid tumors. J Nucl Med 2009;50
       Suppl 1:122S-150S. doi:10.2967/jnumed.108.057307
    .. [2] O JH, Lodge MA, Wahl RL. Practical PERCIST: a simplified guide to PET
       Response Criteria in Solid Tumors 1.0. Radiology 2016;280:576-584.
       doi:10.1148/radiol.2016142043

    Examples
    --------
    >>> from theraquant.response import percist
    >>> r = percist(10.0, 6.5, reference_mean=2.0, reference_sd=0.3)
    >>> r.category, r.rule.id, round(r.values["change_fraction"], 3), r.values["measurability_threshold_sul"]
    ('PMR', 'percist.pmr', -0.35, 3.6)
    >>> percist(2.0, 1.3).category  # -35 % but only -0.7 SUL units
    'SMD'
    >>> r = percist({"seg4": 6.0, "seg7": 9.0}, {"seg4": 12.0, "seg7": 5.0})
    >>> r.category, r.values["baseline_lesion"], r.values["followup_lesion"], r.level
    ('PMD', 'seg7', 'seg4', 'patient')
    """
    thr = _thresholds("PERCIST", thresholds)
    _check_strict(strict)
    if reference not in ("liver", "blood_pool"):
        raise TheraquantError(
            f"reference must be 'liver' or 'blood_pool', got {reference!r}; use 'blood_pool' "
            "(descending aorta) when the liver is abnormal")
    for flag, val in (("new_lesions", new_lesions), ("non_target_progression", non_target_progression)):
        if not isinstance(val, (bool, np.bool_)):
            raise TheraquantError(f"{flag} must be True or False, got {val!r}")

    # --- lesions: one lesion, or the hottest of each scan (patient level)
    values: dict[str, Any] = {}
    patient = _is_collection(baseline_sulpeak)
    if patient != (_is_collection(followup_sulpeak) or (followup_sulpeak is None and patient)):
        raise TheraquantError(
            f"baseline_sulpeak is {'a lesion collection' if patient else 'a single value'} but "
            f"followup_sulpeak is {type(followup_sulpeak).__name__}; give both as numbers (lesion "
            "level) or both as mappings/sequences of lesions (patient level)")
    if patient:
        base_map = _lesion_values(baseline_sulpeak, "baseline_sulpeak", "SUL")
        if not base_map:
            raise TheraquantError(
                "baseline_sulpeak holds no lesion; PERCIST needs at least one FDG-avid lesion at "
                "baseline, so grade this patient on new lesions alone")
        fu_map = {} if followup_sulpeak is None else _lesion_values(
            followup_sulpeak, "followup_sulpeak", "SUL")
        b_id, b = _hottest(base_map)
        if b <= 0:
            raise TheraquantError(f"baseline_sulpeak: the hottest lesion {b_id!r} has SULpeak {b!r}; "
                                  "it must be > 0 SUL to compute a relative change")
        f_id, f = _hottest(fu_map) if fu_map else (None, None)
        values.update(baseline_lesion=b_id, followup_lesion=f_id, same_lesion=(b_id == f_id),
                      n_baseline_lesions=len(base_map), n_followup_lesions=len(fu_map))
    else:
        b = finite(baseline_sulpeak, "baseline_sulpeak", unit="SUL", strict_min=True,
                   fix="a relative change needs a positive baseline")
        f = _opt(followup_sulpeak, "followup_sulpeak", "SUL")

    ref_m = _opt(reference_mean, "reference_mean", "SUL", positive=True)
    ref_s = _opt(reference_sd, "reference_sd", "SUL")
    if (ref_m is None) != (ref_s is None):
        raise TheraquantError(
            f"reference_mean and reference_sd go together, got reference_mean={reference_mean!r} "
            f"and reference_sd={reference_sd!r}; give both (SUL units) or neither")
    fu_ref = _opt(followup_reference_mean, "followup_reference_mean", "SUL", positive=True)
    tlg_b = _opt(baseline_tlg, "baseline_tlg", "g (SUL x mL)", positive=True)
    tlg_f = _opt(followup_tlg, "followup_tlg", "g (SUL x mL)")
    if (tlg_b is None) != (tlg_f is None):
        raise TheraquantError(
            f"baseline_tlg and followup_tlg go together, got {baseline_tlg!r} and {followup_tlg!r}; "
            "give both (g) to use the TLG rule, or neither")

    # --- measurability and reference comparability
    findings: list[Finding] = []
    if ref_m is not None:
        if reference == "liver":
            meas = thr["liver_factor"] * ref_m + thr["liver_sd_factor"] * ref_s
        else:
            meas = thr["blood_pool_factor"] * ref_m + thr["blood_pool_sd_factor"] * ref_s
    else:
        meas = None
        findings.append(Finding(
            20, "percist.measurability",
            "measurability not checked: no reference_mean/reference_sd given",
            "pass the baseline liver (or blood-pool) SUL mean and SD"))
    ref_change = ref_change_frac = None
    if ref_m is not None and fu_ref is not None:
        ref_change = fu_ref - ref_m
        ref_change_frac = ref_change / ref_m
        if (at_least(abs(ref_change_frac), thr["reference_change_max_fraction"], True)
                or at_least(abs(ref_change), thr["reference_change_max_abs_SUL"], True)):
            findings.append(Finding(
                30, "percist.reference_stability",
                f"{reference} reference SUL mean changed from {ref_m:.3g} to {fu_ref:.3g} "
                f"({100 * ref_change_frac:+.1f} %, {ref_change:+.2f} SUL); PERCIST needs a change "
                f"< {100 * thr['reference_change_max_fraction']:g} % and "
                f"< {thr['reference_change_max_abs_SUL']:g} SUL",
                "check uptake time, glucose and scanner/reconstruction; read the result with care"))
    cmr_ref = fu_ref if fu_ref is not None else ref_m

    # --- decision (the same vectorised core grades lesion tables)
    rid = str(_percist_codes(
        _a(b), _a(f), np.array([f is None]), _a(meas), _a(cmr_ref), np.array([bool(new_lesions)]),
        _a(tlg_b), _a(tlg_f), thr, np.array([bool(non_target_progression)]))[0])
    category, text = percist_rules(thr)[rid]
    _handle_findings(findings, strict)

    change = None if f is None else f - b
    values = {
        "baseline_sulpeak": b, "followup_sulpeak": f, "change_sul": change,
        "change_fraction": None if f is None else change / b,
        "reference": reference, "reference_mean_sul": ref_m, "reference_sd_sul": ref_s,
        "measurability_threshold_sul": None if meas is None else round(meas, 12),
        "measurable": None if meas is None else bool(at_least(b, meas, True)),
        "followup_reference_mean_sul": fu_ref, "reference_change_sul": ref_change,
        "reference_change_fraction": ref_change_frac,
        "new_lesions": bool(new_lesions), "non_target_progression": bool(non_target_progression),
        **values,
        "baseline_tlg": tlg_b, "followup_tlg": tlg_f,
        "tlg_change_fraction": None if tlg_b is None else (tlg_f - tlg_b) / tlg_b,
    }
    name, version, doi = meta("PERCIST")
    return ResponseResult(category, Rule(rid, text), values, name, version, thr,
                          "patient" if patient else "lesion", doi, tuple(findings))


# --------------------------------------------------------------------------- EORTC
@records_call("theraquant.response.eortc")
def eortc(
    baseline_suv: float | Mapping[str, float] | Sequence[float],
    followup_suv: float | Mapping[str, float] | Sequence[float] | None,
    *,
    new_lesions: bool = False,
    after_one_cycle: bool = False,
    baseline_extent_mm: float | None = None,
    followup_extent_mm: float | None = None,
    background_suv: float | None = None,
    aggregate: str = "sum",
    thresholds: Mapping[str, Any] | None = None,
) -> ResponseResult:
    """Grade a metabolic response by the EORTC 1999 recommendations (CMR, PMR, SMD, PMD).

    At **lesion level** (two numbers: the SUV of one tumour region at baseline and
    follow-up, the region drawn on the baseline scan) or at **patient level** (two
    mappings of lesion id to SUV, combined by `aggregate`).

    Parameters
    ----------
    baseline_suv : float, or mapping of lesion id to float, or sequence of float
        SUV (max or mean, the same statistic on both scans) at baseline, g/mL, > 0.
    followup_suv : float, mapping, sequence or None
        SUV at follow-up, g/mL, of the same kind. ``None`` means complete resolution
        of uptake (read as such).
    new_lesions : bool
        New FDG-avid metastases (-> PMD).
    after_one_cycle : bool
        The follow-up scan is after one cycle of treatment: a decrease of 15 %
        suffices for PMR instead of 25 % (thresholds ``PMR_after_1_cycle`` and
        ``PMR_after_more_cycles``).
    baseline_extent_mm, followup_extent_mm : float, optional
        Longest dimension of the FDG uptake, mm. When both are given, an increase
        of at least 20 % is PMD.
    background_suv : float, optional
        SUV of the surrounding normal tissue, g/mL: a follow-up SUV at or below it is
        complete resolution (CMR).
    aggregate : {"sum", "max"}
        Patient level only. EORTC 1999 does not say how to combine lesions:
        ``"sum"`` (default) adds the SUV of the baseline lesions, measured in the same
        regions at follow-up (the follow-up mapping must hold the same ids);
        ``"max"`` compares the hottest lesion of each scan (as PERCIST does).
    thresholds : mapping, optional
        Overrides of ``criteria("EORTC")["thresholds"]``.

    Returns
    -------
    ResponseResult
        ``category`` in {"CMR", "PMR", "SMD", "PMD"}; ``values`` holds
        ``baseline_suv``, ``followup_suv``, ``change_fraction``, the PMR threshold
        used and the extent change.

    Notes
    -----
    Rules in order: new lesion -> PMD; resolved (or SUV <= background) -> CMR;
    SUV change > +25 % -> PMD; extent change > +20 % -> PMD; SUV change < -25 %
    after more than one cycle (<= -15 % after one cycle) -> PMR; otherwise SMD, as
    Young et al. word them: PMD "greater than 25 %", PMR "a minimum of 15-25 % after
    one cycle ... and greater than 25 % after more than one treatment cycle"
    (criteria.json ``operators``/``quotes``). Exactly +25 % or -25 % (more than one
    cycle) is SMD. Changes are compared with an absolute tolerance of 1e-9.

    References
    ----------
    .. [1] Young H, Baum R, Cremerius U, et al. Measurement of clinical and subclinical
       tumour response using [18F]-fluorodeoxyglucose and positron emission
       tomography: review and 1999 EORTC recommendations. Eur J Cancer
       1999;35:1773-1782. doi:10.1016/S0959-8049(99)00229-4

    Examples
    --------
    >>> from theraquant.response import eortc
    >>> r = eortc(8.0, 5.6)
    >>> r.category, r.rule.id, round(r.values["change_fraction"], 12)
    ('PMR', 'eortc.pmr', -0.3)
    >>> eortc(8.0, 6.0).category, eortc(8.0, 10.0).category   # exactly -25 %, +25 %
    ('SMD', 'SMD')
    >>> eortc(8.0, 6.8).category, eortc(8.0, 6.8, after_one_cycle=True).category
    ('SMD', 'PMR')
    """
    thr = _thresholds("EORTC", thresholds)
    if not isinstance(new_lesions, (bool, np.bool_)):
        raise TheraquantError(f"new_lesions must be True or False, got {new_lesions!r}")
    if not isinstance(after_one_cycle, (bool, np.bool_)):
        raise TheraquantError(f"after_one_cycle must be True or False, got {after_one_cycle!r}")
    if aggregate not in ("sum", "max"):
        raise TheraquantError(f"aggregate must be 'sum' or 'max', got {aggregate!r}")

    extra: dict[str, Any] = {}
    patient = _is_collection(baseline_suv)
    if patient != (_is_collection(followup_suv) or (followup_suv is None and patient)):
        raise TheraquantError(
            f"baseline_suv is {'a lesion collection' if patient else 'a single value'} but "
            f"followup_suv is {type(followup_suv).__name__}; give both as numbers (lesion level) "
            "or both as mappings/sequences of lesions (patient level)")
    if patient:
        base_map = _lesion_values(baseline_suv, "baseline_suv", "g/mL")
        if not base_map:
            raise TheraquantError("baseline_suv holds no lesion; give at least one lesion's SUV")
        fu_map = None if followup_suv is None else _lesion_values(followup_suv, "followup_suv", "g/mL")
        if aggregate == "sum":
            if fu_map is not None and set(fu_map) != set(base_map):
                missing = sorted(set(base_map) - set(fu_map))
                extra_ids = sorted(set(fu_map) - set(base_map))
                raise TheraquantError(
                    f"followup_suv must hold the baseline lesions {sorted(base_map)} (the same "
                    f"regions, EORTC), got missing {missing} and extra {extra_ids}; measure every "
                    "baseline region at follow-up (a resolved lesion at its background SUV) and "
                    "report new lesions with new_lesions=True")
            b = float(sum(base_map.values()))
            f = None if fu_map is None else float(sum(fu_map.values()))
            extra.update(lesions=tuple(base_map))
        else:
            b_id, b = _hottest(base_map)
            f_id, f = _hottest(fu_map) if fu_map else (None, None)
            extra.update(baseline_lesion=b_id, followup_lesion=f_id, same_lesion=(b_id == f_id))
        if b <= 0:
            raise TheraquantError(f"baseline_suv: the aggregated baseline SUV is {b!r}; it must be > 0")
        extra["aggregate"] = aggregate
    else:
        b = finite(baseline_suv, "baseline_suv", unit="g/mL", strict_min=True,
                   fix="a relative change needs a positive baseline")
        f = _opt(followup_suv, "followup_suv", "g/mL")
    ext_b = _opt(baseline_extent_mm, "baseline_extent_mm", "mm", positive=True)
    ext_f = _opt(followup_extent_mm, "followup_extent_mm", "mm")
    if (ext_b is None) != (ext_f is None):
        raise TheraquantError(
            f"baseline_extent_mm and followup_extent_mm go together, got {baseline_extent_mm!r} "
            f"and {followup_extent_mm!r}; give both (mm) or neither")
    bg = _opt(background_suv, "background_suv", "g/mL")
    pmr = thr["PMR_after_1_cycle"] if after_one_cycle else thr["PMR_after_more_cycles"]

    rid = str(_eortc_codes(_a(b), _a(f), np.array([f is None]), _a(bg),
                           np.array([bool(new_lesions)]), _a(ext_b), _a(ext_f), bool(after_one_cycle),
                           thr)[0])
    category, text = eortc_rules(thr)[rid]
    values = {
        "baseline_suv": b, "followup_suv": f,
        "change_fraction": None if f is None else (f - b) / b,
        "pmr_threshold_fraction": -pmr, "pmd_threshold_fraction": thr["PMD_increase"],
        "after_one_cycle": bool(after_one_cycle), "background_suv": bg,
        "baseline_extent_mm": ext_b, "followup_extent_mm": ext_f,
        "extent_change_fraction": None if ext_b is None else (ext_f - ext_b) / ext_b,
        "new_lesions": bool(new_lesions), **extra,
    }
    name, version, doi = meta("EORTC")
    return ResponseResult(category, Rule(rid, text), values, name, version, thr,
                          "patient" if patient else "lesion", doi)
