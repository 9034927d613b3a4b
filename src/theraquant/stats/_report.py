"""One call for a cohort lesion table: every analysis of theraquant.stats, as the CLI reports it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..errors import TheraquantError
from ..results import Result, records_call
from ._bootstrap import BootstrapResult, cluster_bootstrap, roc_bootstrap
from ._common import SummaryMixin, as_binary, fmt_p, frozen_map, table_text, with_cluster
from ._dose import DoseResponse, dose_response
from ._predictor import CrossValidation, cross_validated_auc
from ._regression import LogisticResult, _check_columns, find_patient_column, logistic
from ._roc import RocComparison, RocResult, ThresholdMetrics, compare_roc, roc, threshold_metrics
from ._tables import ResponseTable, response_table
from ._tests import TestResult, kruskal_wallis, mann_whitney, wilcoxon_signed_rank

__all__ = ["CohortReport", "analyze"]

AUTO = "auto"


@dataclass(frozen=True)
class CohortReport(SummaryMixin, Result):
    """Everything :func:`analyze` computed for a lesion table.

    Attributes
    ----------
    outcome : str
        Outcome column (1 = responder).
    markers : tuple of str
        Marker columns analysed.
    cluster : str or None
        Patient column used (None: lesion-level analysis).
    cluster_source : str
        "given", "detected" (a column named like a patient id) or "none".
    roc, cutoff_metrics, bootstrap, mann_whitney, univariable : mapping of marker -> result
        Per marker: :class:`RocResult` (Obuchowski variance when clustered), metrics at its Youden
        cut-off, bootstrap CIs (patient-level cluster bootstrap when clustered, else stratified),
        Mann-Whitney responders vs non-responders, univariable logistic (GEE when clustered).
    multivariable : LogisticResult or None
        All markers together (when more than one).
    comparisons : tuple of RocComparison
        Paired DeLong (Obuchowski when clustered) test of every pair of markers.
    cross_validation : CrossValidation or None
        Patient-grouped cross-validated AUC of the multivariable (or single-marker) model.
    dose, strata, groups : optional results
        Dose-response (D50), stratified response table; ``groups`` holds Kruskal-Wallis tests
        across a group column (keyed by marker) and signed-rank tests of a paired change.
    notes : tuple of str
        Analyses skipped with the reason (degenerate input), rows dropped for missing values.
    """

    outcome: str
    markers: tuple[str, ...]
    cluster: str | None
    cluster_source: str
    n_lesions: int
    n_patients: int | None
    n_responders: int
    roc: Mapping[str, RocResult]
    cutoff_metrics: Mapping[str, ThresholdMetrics]
    bootstrap: Mapping[str, BootstrapResult]
    mann_whitney: Mapping[str, TestResult]
    univariable: Mapping[str, LogisticResult]
    multivariable: LogisticResult | None
    comparisons: tuple[RocComparison, ...]
    cross_validation: CrossValidation | None
    dose: DoseResponse | None = None
    strata: ResponseTable | None = None
    groups: Mapping[str, TestResult] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def analysis(self) -> str:
        """Which analysis was used, in words."""
        if self.cluster is None:
            return "lesion-level (lesions treated as independent: DeLong, logistic ML)"
        return (f"clustered by patient column {self.cluster!r} ({self.cluster_source}): Obuchowski ROC variance, "
                "GEE exchangeable with robust errors, patient-level bootstrap and CV folds")

    def marker_rows(self) -> list[list[str]]:
        """One row of text cells per marker (see ``HEADER``) for on-screen tables."""
        rows = []
        for m in self.markers:
            r, u = self.roc.get(m), self.univariable.get(m)
            if r is None:
                auc, cut, ss = "n/a", "n/a", "n/a"
            else:
                auc = f"{r.auc:.3f} ({r.ci[0]:.3f}-{r.ci[1]:.3f})"
                cut = f"{'>=' if r.direction == '<' else '<='} {r.youden_threshold:.4g}"
                ss = f"{r.sensitivity:.2f}/{r.specificity:.2f}"
            if u is None:
                orr, p = "n/a", "n/a"
            else:
                orr, p = f"{u.odds_ratio[m]:#.3g} ({u.ci[m][0]:#.3g}-{u.ci[m][1]:#.3g})", fmt_p(u.p[m])
            rows.append([m, auc, cut, ss, orr, p])
        return rows

    HEADER = ("marker", "AUC (95 % CI)", "cut-off", "sens/spec", "OR/unit (95 % CI)", "p")

    def summary(self) -> str:
        who = f"{self.n_lesions} lesions ({self.n_responders} responding)"
        if self.n_patients is not None:
            who += f" in {self.n_patients} patients"
        parts = [f"Cohort statistics: {self.outcome} vs {', '.join(self.markers)}   {who}",
                 f"analysis: {self.analysis}",
                 table_text(self.HEADER, self.marker_rows(), [12, 20, 10, 10, 22, 10])]
        if self.mann_whitney:
            parts.append("Mann-Whitney, responders vs non-responders:\n" + "\n".join(
                f"  {m:<12} W {t.statistic:g}  p {fmt_p(t.p)}  median {t.details['median_x']:.4g} vs "
                f"{t.details['median_y']:.4g}  ({t.method})" for m, t in self.mann_whitney.items()))
        if self.multivariable is not None:
            parts.append(self.multivariable.summary())
        parts += [c.summary() for c in self.comparisons]
        if self.cross_validation is not None:
            parts.append(self.cross_validation.summary())
        if self.dose is not None:
            parts.append(self.dose.summary())
        if self.strata is not None:
            parts.append(self.strata.summary())
        parts += [f"{m}: {g.summary()}" for m, g in self.groups.items()]
        if self.notes:
            parts.append("\n".join(f"note: {n}" for n in self.notes))
        return "\n\n".join(parts)

    def to_dict(self) -> dict:
        per = lambda d: {k: v.to_dict() for k, v in d.items()}  # noqa: E731
        return {
            "outcome": self.outcome, "markers": list(self.markers), "cluster": self.cluster,
            "cluster_source": self.cluster_source, "analysis": self.analysis, "n_lesions": self.n_lesions,
            "n_patients": self.n_patients, "n_responders": self.n_responders, "roc": per(self.roc),
            "cutoff_metrics": per(self.cutoff_metrics), "bootstrap": per(self.bootstrap),
            "mann_whitney": per(self.mann_whitney), "univariable": per(self.univariable),
            "multivariable": None if self.multivariable is None else self.multivariable.to_dict(),
            "comparisons": [c.to_dict() for c in self.comparisons],
            "cross_validation": None if self.cross_validation is None else self.cross_validation.to_dict(),
            "dose_response": None if self.dose is None else self.dose.to_dict(),
            "stratified_table": None if self.strata is None else self.strata.to_dict(),
            "group_tests": per(self.groups), "settings": dict(self.settings), "notes": list(self.notes)}


def _skip(notes: list, what: str, exc: Exception) -> None:
    notes.append(f"{what} skipped: {str(exc).splitlines()[0]}")


@records_call("theraquant.stats.analyze")
def analyze(data: pd.DataFrame, outcome: str, markers: str | Sequence[str], *, cluster: Any = AUTO,
            n_boot: int = 1000, seed: int | None = 0, n_splits: int = 5, dose: str | None = None,
            strata: Mapping[str, float] | None = None, group: str | None = None,
            paired: tuple[str, str] | None = None) -> CohortReport:
    """Run the whole statistics layer on a lesion table (what ``theraquant stats`` reports).

    Parameters
    ----------
    data : pandas.DataFrame
        One row per lesion.
    outcome : str
        0/1 (or bool) response column, 1 = responder.
    markers : str or sequence of str
        Numeric marker columns (e.g. T/BP, SUVmax, Ktrans, Dmean in Gy).
    cluster : str, array_like, None or "auto", optional
        Patient column, or the patient ids themselves (one per row, as in
        :func:`~theraquant.stats.roc`). "auto" (default) uses a column named like a patient id when there is
        one (patient, patient_id, subject, pid ...), so lesions within patients are analysed as
        clustered by default; None forces a lesion-level analysis. The report says which.
    n_boot : int, optional
        Bootstrap replicates (0 to skip the bootstrap).
    seed : int or None, optional
        Seed of the bootstrap.
    n_splits : int, optional
        Cross-validation folds.
    dose : str, optional
        Dose column (Gy) for the dose-response curve and D50.
    strata : mapping of str to float, optional
        Marker -> cut-off for a stratified response table (e.g. {"tbp": 1.29, "dmean": 89}).
    group : str, optional
        Category column (e.g. RECIST CR/PR/SD/PD) for Kruskal-Wallis tests of each marker.
    paired : (str, str), optional
        Baseline and follow-up columns of one quantity (e.g. ("suv_base", "suv_fu")) for a
        Wilcoxon signed-rank test of the change, in all lesions and within each outcome class.

    Returns
    -------
    CohortReport
        An analysis that cannot run on this table (one class, too few patients, separation) is
        skipped with its reason in ``notes``; the others still run.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from theraquant.stats import analyze
    >>> rng = np.random.default_rng(2)
    >>> x = rng.normal(1.4, 0.3, 40)
    >>> df = pd.DataFrame({"patient": np.repeat(np.arange(10), 4), "tbp": x,
    ...                    "response": (x + rng.normal(0, 0.3, 40) > 1.4).astype(int)})
    >>> rep = analyze(df, "response", ["tbp"], n_boot=200)
    >>> rep.cluster, rep.cluster_source, rep.roc["tbp"].variance_method
    ('patient', 'detected', 'Obuchowski (clustered)')
    """
    markers = (markers,) if isinstance(markers, str) else tuple(markers)
    if not markers:
        raise TheraquantError("markers is empty: give at least one marker column")
    if isinstance(data, pd.DataFrame) and isinstance(cluster, str) and cluster == AUTO:
        cluster = find_patient_column(data)
        source = "detected" if cluster else "none"
    else:
        source = "none" if cluster is None else "given"
        data, cluster = with_cluster(data, cluster)
    if paired is not None and (isinstance(paired, str) or len(paired) != 2):
        raise TheraquantError(f"paired must be (baseline column, follow-up column), got {paired!r}")
    extra = [c for c in (dose, group) if c] + list(strata or {}) + list(paired or ())
    _check_columns(data, [outcome, *markers, *extra] + ([cluster] if cluster else []), "outcome/marker/cluster")
    notes: list[str] = []
    base = data.dropna(subset=[outcome] + ([cluster] if cluster else []))
    if len(base) < len(data):
        notes.append(f"{len(data) - len(base)} lesion(s) without outcome or patient id dropped")
    y_all = as_binary(base[outcome].to_numpy(), name=f"outcome column {outcome!r}")
    if y_all.size < 5:
        raise TheraquantError(f"the table has {y_all.size} usable lesions; cohort statistics need at least 5")
    if y_all.sum() in (0, y_all.size):
        raise TheraquantError(
            f"outcome {outcome!r} has one class only ({int(y_all.sum())} responders of {y_all.size} lesions): "
            "there is nothing to predict; check the outcome column and its coding")
    for m in markers:
        if not pd.api.types.is_numeric_dtype(base[m]):
            raise TheraquantError(f"marker {m!r} must be numeric, got dtype {base[m].dtype}")
    rocs, cuts, boots, mws, unis = {}, {}, {}, {}, {}
    for m in markers:
        sub = base.dropna(subset=[m])
        if len(sub) < len(base):
            notes.append(f"{m}: {len(base) - len(sub)} lesion(s) with a missing value left out")
        y = sub[outcome].to_numpy().astype(int)
        s = sub[m].to_numpy(float)
        cl = sub[cluster].to_numpy() if cluster else None
        try:
            rocs[m] = r = roc(y, s, cluster=cl, name=m)
            cuts[m] = threshold_metrics(y, s, r.youden_threshold, direction=r.direction, name=m)
        except TheraquantError as exc:
            _skip(notes, f"{m}: ROC", exc)
        if n_boot and m in rocs:
            try:
                boots[m] = (cluster_bootstrap(y, s, cl, n_boot=n_boot, seed=seed, name=m) if cluster
                            else roc_bootstrap(y, s, n_boot=n_boot, seed=seed, name=m))
            except TheraquantError as exc:
                _skip(notes, f"{m}: bootstrap", exc)
        try:
            mws[m] = mann_whitney(s[y == 1], s[y == 0])
        except TheraquantError as exc:
            _skip(notes, f"{m}: Mann-Whitney", exc)
        try:
            unis[m] = logistic(sub, outcome, m, cluster=cluster)
        except TheraquantError as exc:
            _skip(notes, f"{m}: logistic model", exc)
    multi = None
    if len(markers) > 1:
        try:
            multi = logistic(base, outcome, markers, cluster=cluster)
        except TheraquantError as exc:
            _skip(notes, "multivariable model", exc)
    comps = []
    for i, a in enumerate(markers):
        for b in markers[i + 1:]:
            sub = base.dropna(subset=[a, b])
            try:
                comps.append(compare_roc(sub[outcome].to_numpy().astype(int), sub[a], sub[b],
                                         cluster=sub[cluster].to_numpy() if cluster else None, names=(a, b)))
            except TheraquantError as exc:
                _skip(notes, f"ROC comparison {a} vs {b}", exc)
    cv = None
    try:
        cv = cross_validated_auc(base, outcome, markers, cluster=cluster, n_splits=n_splits)
    except TheraquantError as exc:
        _skip(notes, "cross-validation", exc)
    dr = None
    if dose:
        sub = base.dropna(subset=[dose])
        try:
            dr = dose_response(sub[dose], sub[outcome].astype(int), cluster=sub[cluster] if cluster else None,
                               name=dose)
        except TheraquantError as exc:
            _skip(notes, "dose-response", exc)
    st = None
    if strata:
        try:
            st = response_table(base, outcome, strata, cluster=cluster)
        except TheraquantError as exc:
            _skip(notes, "stratified table", exc)
    groups = {}
    if group:
        for m in markers:
            sub = base.dropna(subset=[m, group])
            try:
                groups[m] = kruskal_wallis(sub[m], sub[group].astype(str))
            except TheraquantError as exc:
                _skip(notes, f"{m}: Kruskal-Wallis across {group}", exc)
    if paired:
        b0, b1 = paired
        sub = base.dropna(subset=[b0, b1])
        ys = sub[outcome].to_numpy().astype(int)
        for label, sel in (("all lesions", np.ones(len(sub), bool)), ("responders", ys == 1),
                           ("non-responders", ys == 0)):
            try:
                groups[f"{b0} -> {b1} ({label})"] = wilcoxon_signed_rank(sub[b0][sel], sub[b1][sel])
            except TheraquantError as exc:
                _skip(notes, f"signed-rank test {b0} -> {b1} ({label})", exc)
    settings = {"cluster": cluster, "n_boot": n_boot, "seed": seed, "n_splits": n_splits, "dose": dose,
                "strata": dict(strata or {}), "group": group, "paired": list(paired or ()),
                "ci_level": 0.95}
    return CohortReport(
        outcome=outcome, markers=markers, cluster=cluster, cluster_source=source, n_lesions=int(len(base)),
        n_patients=int(base[cluster].nunique()) if cluster else None, n_responders=int(y_all.sum()),
        roc=frozen_map(rocs), cutoff_metrics=frozen_map(cuts), bootstrap=frozen_map(boots),
        mann_whitney=frozen_map(mws), univariable=frozen_map(unis), multivariable=multi, comparisons=tuple(comps),
        cross_validation=cv, dose=dr, strata=st, groups=frozen_map(groups), settings=frozen_map(settings),
        notes=tuple(notes))
