"""``study.yaml``: the settings of a study run, validated with pydantic.

Every key has a default, so an empty or missing ``study.yaml`` is valid. A wrong key or value is a
:class:`~theraquant.TheraquantError` that names the key path (``dce.r1``), the value and what is
allowed. :func:`default_yaml` writes the file that ``theraquant init`` puts in a study folder: every
key with its default and a comment taken from the field's description.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import TheraquantError
from ._dce import DCE_MODELS

__all__ = ["StudyConfig", "TherapyConfig", "DceConfig", "FmisoConfig", "DosimetryConfig", "ResponseConfig",
           "PredictorConfig", "PatientConfig", "load_config", "default_yaml", "config_hash",
           "PREDICTOR_DEFAULT_MARKERS"]

#: Markers of the predictor when ``predictor.markers`` is not set, per therapy type.
PREDICTOR_DEFAULT_MARKERS = {"tare": ("t_bp", "dmean_gy", "ktrans"), "prrt": ("ktrans", "vp", "dmean_gy")}

_SUV_NORMALIZATIONS = ("bw", "lbm-james", "lbm-janmahasatian", "bsa", "ibw")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class TherapyConfig(_Section):
    """``therapy``: what was given and when."""

    date: Optional[_dt.date] = Field(
        None, description="therapy date for every patient (YYYY-MM-DD); empty = each patient's first "
                          "90Y/177Lu scan date, unless patients.<PatientID>.therapy_date is set")
    type: Optional[Literal["tare", "prrt"]] = Field(
        None, description="tare | prrt; empty = from the images (90Y PET -> tare, 177Lu -> prrt)")


class DceConfig(_Section):
    """``dce``: DCE-MRI signal-to-concentration conversion and model."""

    model: Optional[str] = Field(
        None, description=f"tracer-kinetic model, one of {', '.join(DCE_MODELS)}; empty = etofts, or "
                          "dual_input_etofts when a portal-vein segment exists")
    r1: float = Field(4.5, gt=0, description="contrast-agent relaxivity r1, 1/(s mM)")
    hematocrit: float = Field(0.45, gt=0, lt=1, description="large-vessel haematocrit (fraction)")
    t10_blood_s: float = Field(1.6, gt=0, description="pre-contrast T1 of blood, s (used when there is no VFA "
                                                      "series)")
    t10_tissue_s: float = Field(0.81, gt=0, description="pre-contrast T1 of liver tissue, s (used when there is "
                                                        "no VFA series)")
    n_baseline: Optional[int] = Field(None, ge=1, description="number of pre-contrast frames; empty = detected "
                                                              "from the arterial input's onset")

    @field_validator("model")
    @classmethod
    def _known_model(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and v not in DCE_MODELS:
            raise ValueError(f"Input should be one of {', '.join(DCE_MODELS)} or empty")
        return v


class FmisoConfig(_Section):
    """``fmiso``: FMISO PET hypoxia."""

    threshold: float = Field(1.29, gt=0, description="tumour-to-blood-pool ratio above which a lesion (or voxel) "
                                                     "is hypoxic (ARTE-MISO cut-off)")
    normalization: Literal["bw", "lbm-james", "lbm-janmahasatian", "bsa", "ibw"] = Field(
        "bw", description=f"SUV normalisation: {' | '.join(_SUV_NORMALIZATIONS)}")


class DosimetryConfig(_Section):
    """``dosimetry``: absorbed dose from the post-therapy activity."""

    method: Literal["ldm", "vsv"] = Field("ldm", description="ldm (local deposition, default for 90Y PET) | vsv "
                                                             "(voxel S-value convolution)")
    normalize_to_injected: bool = Field(False, description="rescale the image to the injected activity "
                                                           "(true | false)")
    density_g_ml: float = Field(1.04, gt=0, description="tissue density, g/mL")


class ResponseConfig(_Section):
    """``response``: the criteria grading each lesion."""

    criteria: Optional[Literal["percist", "recist", "mrecist", "eortc"]] = Field(
        None, description="percist | recist | mrecist | eortc; empty = percist with FDG follow-up, else recist")


class PredictorConfig(_Section):
    """``predictor``: the cohort statistics and the fitted response predictor."""

    markers: Optional[tuple[str, ...]] = Field(
        None, description="lesions.csv columns used as predictors; empty = tare: [t_bp, dmean_gy, ktrans], "
                          "prrt: [ktrans, vp, dmean_gy]")

    @field_validator("markers")
    @classmethod
    def _non_empty(cls, v: Optional[tuple[str, ...]]) -> Optional[tuple[str, ...]]:
        if v is not None and len(v) == 0:
            raise ValueError("Input should be a non-empty list of lesions.csv column names, or empty for the default")
        return v


class PatientConfig(_Section):
    """``patients.<PatientID>``: per-patient overrides."""

    therapy_date: Optional[_dt.date] = Field(None, description="this patient's therapy date (YYYY-MM-DD)")


class StudyConfig(_Section):
    """The validated content of ``study.yaml`` (every key defaulted).

    Construction from bad data raises :class:`~theraquant.TheraquantError` naming the key path,
    the value and what is allowed (never a bare pydantic ``ValidationError``).

    Examples
    --------
    >>> cfg = StudyConfig.model_validate({"therapy": {"type": "tare"}, "dce": {"r1": 3.9}})
    >>> cfg.dce.r1, cfg.dce.hematocrit, cfg.fmiso.threshold, cfg.dosimetry.method
    (3.9, 0.45, 1.29, 'ldm')
    >>> try:
    ...     StudyConfig.model_validate({"dce": {"r2": 1}})
    ... except TheraquantError as exc:
    ...     print(exc.message)
    study.yaml: unknown key 'dce.r2'; allowed keys in dce: model, r1, hematocrit, t10_blood_s, t10_tissue_s, n_baseline
    """

    therapy: TherapyConfig = Field(default_factory=TherapyConfig, description="the therapy")
    dce: DceConfig = Field(default_factory=DceConfig, description="DCE-MRI")
    fmiso: FmisoConfig = Field(default_factory=FmisoConfig, description="FMISO PET hypoxia")
    dosimetry: DosimetryConfig = Field(default_factory=DosimetryConfig, description="absorbed dose")
    response: ResponseConfig = Field(default_factory=ResponseConfig, description="response criteria")
    predictor: PredictorConfig = Field(default_factory=PredictorConfig, description="cohort statistics")
    patients: dict[str, PatientConfig] = Field(default_factory=dict, description="per-patient overrides, by "
                                                                                 "PatientID")

    @field_validator("patients", mode="before")
    @classmethod
    def _patients_none(cls, v: Any) -> Any:
        return {} if v is None else v

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _config_error(exc, "study.yaml") from None

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any) -> "StudyConfig":  # type: ignore[override]
        """Validate a mapping (the parsed YAML); errors are :class:`~theraquant.TheraquantError`."""
        if obj is None:
            obj = {}
        if not isinstance(obj, dict) and not isinstance(obj, StudyConfig):
            raise TheraquantError(f"study.yaml: the file must hold a mapping of sections (therapy:, dce:, ...), "
                                  f"got {type(obj).__name__}", fix="start from the file `theraquant init` writes")
        if isinstance(obj, StudyConfig):
            return obj
        return cls(**{str(k): v for k, v in obj.items()})  # __init__ turns errors into TheraquantError

    def therapy_date_for(self, patient_id: str) -> tuple[Optional[_dt.date], str]:
        """The configured therapy date of a patient and where it came from (``None, ""`` if not set)."""
        p = self.patients.get(patient_id)
        if p is not None and p.therapy_date is not None:
            return p.therapy_date, f"patients.{patient_id}.therapy_date"
        if self.therapy.date is not None:
            return self.therapy.date, "therapy.date"
        return None, ""


def _fields_of(model: type[BaseModel], loc: tuple) -> Optional[type[BaseModel]]:
    """The pydantic model class at ``loc`` inside ``model`` (None if loc is not a section)."""
    cur: Any = model
    for part in loc:
        if cur is StudyConfig and part == "patients":
            cur = "patients"
            continue
        if cur == "patients":
            cur = PatientConfig
            continue
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)) or part not in cur.model_fields:
            return None
        ann = cur.model_fields[part].annotation
        cur = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return cur if isinstance(cur, type) else None


def _config_error(exc: ValidationError, source: str) -> TheraquantError:
    """One TheraquantError for a pydantic ValidationError: every bad key, its value and what is allowed."""
    parts = []
    first_key = None
    for e in exc.errors():
        loc = tuple(str(x) for x in e["loc"])
        key = ".".join(loc) or "(top level)"
        first_key = first_key or key
        if e["type"] == "extra_forbidden":
            parent = _fields_of(StudyConfig, tuple(e["loc"][:-1]))
            allowed = ", ".join(parent.model_fields) if parent is not None else "none"
            where = ".".join(loc[:-1]) or "the top level"
            parts.append(f"unknown key '{key}'; allowed keys in {where}: {allowed}")
        else:
            msg = e["msg"].removeprefix("Value error, ")
            parts.append(f"{key} = {e.get('input')!r}: {msg}")
    return TheraquantError(f"{source}: " + "; ".join(parts), argument=first_key,
                           fix="correct the key in study.yaml (`theraquant init --overwrite` writes every key with "
                               "its default and a comment)")


def _loader() -> type:
    """yaml.SafeLoader that leaves dates as text, so pydantic validates them (and names a bad one)."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    _Loader.yaml_implicit_resolvers = {k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"]
                                       for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    return _Loader


def load_config(path: str | Path | None) -> StudyConfig:
    """Read and validate a ``study.yaml``.

    Parameters
    ----------
    path : str or Path or None
        The file; a study folder (its ``study.yaml`` is read); ``None`` or a missing
        ``study.yaml`` inside an existing folder gives the defaults.

    Returns
    -------
    StudyConfig

    Raises
    ------
    TheraquantError
        The file is not YAML, not a mapping, or has a wrong key or value (the message names the
        key path and what is allowed).
    """
    import yaml

    if path is None:
        return StudyConfig()
    path = Path(path)
    if path.is_dir():
        path = path / "study.yaml"
        if not path.exists():
            return StudyConfig()
    if not path.is_file():
        raise TheraquantError(f"study config {path} does not exist", argument="config",
                              fix="give an existing study.yaml or a study folder")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_loader())  # noqa: S506 - a SafeLoader
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise TheraquantError(f"{path}: not valid YAML{at}: {str(exc).splitlines()[0]}", argument="config",
                              fix="fix the YAML syntax (indentation, 'key: value')") from None
    try:
        return StudyConfig.model_validate(data)
    except TheraquantError as exc:
        msg = str(exc).replace("study.yaml:", f"{path}:", 1)
        raise TheraquantError(msg, argument=getattr(exc, "argument", None), fix=getattr(exc, "fix", None)) from None


def config_hash(config: StudyConfig) -> str:
    """SHA-256 (hex, first 16 digits) of the config after defaults: equal settings, equal hash."""
    text = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _yaml_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(str(x) for x in v) + "]"
    if isinstance(v, _dt.date):
        return v.isoformat()
    if isinstance(v, str):
        return v
    return repr(v)


def default_yaml(config: StudyConfig | None = None, *, patient_ids: tuple[str, ...] = (),
                 header: str = "") -> str:
    """The text of a ``study.yaml`` with every key, its value and a comment per key.

    Parameters
    ----------
    config : StudyConfig, optional
        Values to write (default: the defaults).
    patient_ids : tuple of str
        Patients listed (commented out) under ``patients:`` so a therapy date can be set per patient.
    header : str
        Comment lines put at the top (without the leading ``#``).

    Examples
    --------
    >>> text = default_yaml()
    >>> StudyConfig.model_validate(__import__("yaml").safe_load(text)) == StudyConfig()
    True
    >>> "  r1: 4.5" in text
    True
    """
    config = config or StudyConfig()
    lines = [f"# {h}" if h else "#" for h in header.splitlines()]
    lines += ["# theraquant study settings; every key is optional (empty = the default described).", ""]
    for name, field in StudyConfig.model_fields.items():
        if name == "patients":
            continue
        section = getattr(config, name)
        lines.append(f"{name}:  # {field.description}")
        for key, sub in type(section).model_fields.items():
            value = _yaml_value(getattr(section, key))
            entry = f"  {key}: {value}" if value else f"  {key}:"
            lines.append(f"{entry:<32} # {sub.description}")
        lines.append("")
    lines.append("# per-patient overrides, by PatientID, e.g.")
    lines.append("#   PATIENT-ID:")
    lines.append("#     therapy_date: 2024-05-17")
    if config.patients:
        lines.append("patients:")
        for pid, pc in config.patients.items():
            lines.append(f"  {json.dumps(pid)}:")
            lines.append(f"    therapy_date: {_yaml_value(pc.therapy_date)}")
    else:
        lines.append("patients:")
        for pid in patient_ids:
            lines.append(f"#  {json.dumps(pid)}:")
            lines.append("#    therapy_date:")
    return "\n".join(lines) + "\n"
