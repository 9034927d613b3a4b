"""study.yaml: defaults, validation errors naming the key, the commented template of `theraquant init`."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from theraquant import TheraquantError
from theraquant.pipeline import StudyConfig, config_hash, default_yaml, load_config


def test_defaults_are_the_issue_values():
    c = StudyConfig()
    assert c.therapy.date is None and c.therapy.type is None
    assert c.dce.model is None and c.dce.r1 == 4.5 and c.dce.hematocrit == 0.45
    assert c.dce.t10_blood_s == 1.6 and c.dce.t10_tissue_s == 0.81 and c.dce.n_baseline is None
    assert c.fmiso.threshold == 1.29 and c.fmiso.normalization == "bw"
    assert c.dosimetry.method == "ldm" and c.dosimetry.normalize_to_injected is False
    assert c.dosimetry.density_g_ml == 1.04
    assert c.response.criteria is None and c.predictor.markers is None and c.patients == {}


def test_missing_or_empty_file_gives_defaults(tmp_path):
    assert load_config(tmp_path) == StudyConfig()  # folder without study.yaml
    (tmp_path / "study.yaml").write_text("")
    assert load_config(tmp_path / "study.yaml") == StudyConfig()


def test_values_are_read_and_frozen(tmp_path):
    (tmp_path / "study.yaml").write_text(
        "therapy:\n  date: 2024-05-17\n  type: tare\ndce:\n  r1: 3.9\n  model: dual_input_etofts\n"
        "predictor:\n  markers: [t_bp, dmean_gy]\npatients:\n  'PAT 7':\n    therapy_date: 2024-06-01\n")
    c = load_config(tmp_path)
    assert c.therapy.date == dt.date(2024, 5, 17) and c.therapy.type == "tare"
    assert c.dce.r1 == 3.9 and c.dce.model == "dual_input_etofts"
    assert c.predictor.markers == ("t_bp", "dmean_gy")
    assert c.therapy_date_for("PAT 7") == (dt.date(2024, 6, 1), "patients.PAT 7.therapy_date")
    assert c.therapy_date_for("other") == (dt.date(2024, 5, 17), "therapy.date")
    with pytest.raises(Exception, match="frozen"):
        c.dce.r1 = 5.0  # type: ignore[misc]


@pytest.mark.parametrize("text, match", [
    ("dce:\n  r2: 4\n", r"unknown key 'dce\.r2'; allowed keys in dce: model, r1, hematocrit"),
    ("dosimetry:\n  method: mird\n", r"dosimetry\.method = 'mird': Input should be 'ldm' or 'vsv'"),
    ("therapy:\n  type: sirt\n", r"therapy\.type = 'sirt': Input should be 'tare' or 'prrt'"),
    ("dce:\n  hematocrit: 1.2\n", r"dce\.hematocrit = 1\.2: Input should be less than 1"),
    ("dce:\n  model: tofu\n", r"dce\.model = 'tofu': Input should be one of tofts, etofts"),
    ("response:\n  criteria: who\n", r"response\.criteria = 'who'.*'percist', 'recist', 'mrecist' or 'eortc'"),
    ("patients:\n  A:\n    therapy_date: 2024-02-30\n", r"patients\.A\.therapy_date = '2024-02-30'"),
    ("fmisso:\n  threshold: 1\n", r"unknown key 'fmisso'; allowed keys in the top level: therapy, dce, fmiso"),
])
def test_wrong_key_or_value_names_the_key_and_what_is_allowed(tmp_path, text, match):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    with pytest.raises(TheraquantError, match=match) as info:
        load_config(path)
    assert str(path) in str(info.value)  # the file is named


def test_error_argument_is_the_key_path():
    with pytest.raises(TheraquantError) as info:
        StudyConfig.model_validate({"fmiso": {"threshold": -1}})
    assert info.value.argument == "fmiso.threshold"
    with pytest.raises(TheraquantError, match=r"fmiso\.threshold = 0"):
        StudyConfig(fmiso={"threshold": 0})


def test_not_yaml_or_not_a_mapping(tmp_path):
    path = tmp_path / "study.yaml"
    path.write_text("dce: [1, 2\n")
    with pytest.raises(TheraquantError, match=r"study\.yaml: not valid YAML"):
        load_config(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(TheraquantError, match="must hold a mapping of sections"):
        load_config(path)
    with pytest.raises(TheraquantError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_template_has_every_key_with_a_comment_and_round_trips():
    text = default_yaml(patient_ids=("A", "B"))
    assert StudyConfig.model_validate(yaml.safe_load(text)) == StudyConfig()
    for section, model in StudyConfig.model_fields.items():
        if section == "patients":
            continue
        for key in model.annotation.model_fields:
            line = next(ln for ln in text.splitlines() if ln.startswith(f"  {key}:"))
            assert "# " in line, line
    # uncommenting a patient block gives a valid override
    edited = text.replace('#  "A":', '  "A":').replace("#    therapy_date:", "    therapy_date: 2024-01-02", 1)
    assert load_config_text(edited).patients["A"].therapy_date == dt.date(2024, 1, 2)


def load_config_text(text: str) -> StudyConfig:
    return StudyConfig.model_validate(yaml.safe_load(text))


def test_hash_changes_with_settings_only():
    assert config_hash(StudyConfig()) == config_hash(StudyConfig.model_validate({}))
    assert config_hash(StudyConfig()) != config_hash(StudyConfig.model_validate({"dce": {"r1": 4.4}}))
