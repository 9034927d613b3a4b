"""Organ dosimetry with OpenDose 177Lu S values.

Source: tests/data/nm/opendose_lu177_organ_svalues (OpenDose, Chauvin et al. J Nucl Med 2020;61:1514,
via dsarrut/rpt_dosi, LGPL-3.0). Rows: [target, S mGy/(MBq s), standard error, target mass g].
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from theraquant import dosimetry as dm
from theraquant.errors import TheraquantError

NM = Path(__file__).resolve().parents[1] / "data" / "nm"



def _row(phantom, stem, target):
    rows = json.loads((NM / "opendose_lu177_organ_svalues" / phantom / f"lu-177_{stem}.json").read_text())
    r = next(r for r in rows if r[0] == target)
    return float(r[1]), float(r[3])


@pytest.mark.parametrize(("phantom", "source", "stem", "target"), [
    ("ICRP_110_AM", "liver", "liver", "Liver"),
    ("ICRP_110_AF", "liver", "liver", "Liver"),
    ("ICRP_110_AM", "spleen", "spleen", "Spleen"),
    ("ICRP_110_AF", "left_kidney", "left_kidney_cmp", "Left kidney C+M+P"),
    ("ICRP_110_AM", "right_kidney", "right_kidney_cmp", "Right kidney C+M+P"),
])
def test_self_s_value_reproduced_through_organ_dose(phantom, source, stem, target):
    s, m = _row(phantom, stem, target)
    tia = 5000.0  # MBq h
    r = dm.organ_dose(tia, source=source, phantom=phantom)
    assert r["D_Gy"] == pytest.approx(tia * 3600 * s * 1e-3, rel=1e-12)  # MIRD: D = TIA x S
    assert r["reference_mass_g"] == m


def test_am_liver_value_from_readme():
    # README section 4: AM liver -> liver 1.3713e-5 mGy/(MBq s), liver mass 1799.8 g
    s = dm.organ_s_value("liver")
    assert s["S_mGy_per_MBq_s"] == 1.3713e-5
    assert s["target_mass_g"] == pytest.approx(1799.8, abs=0.05)


def test_cross_organ_s_value():
    s, _ = _row("ICRP_110_AM", "left_kidney_cmp", "Liver")
    r = dm.organ_dose(1000.0, source="left_kidney", target="Liver")
    assert r["D_Gy"] == pytest.approx(1000 * 3600 * s * 1e-3, rel=1e-12)


def test_mass_scaling_of_self_dose():
    s_ref, m_ref = _row("ICRP_110_AM", "liver", "Liver")
    same = dm.organ_dose(1000.0, source="liver", organ_mass_g=m_ref)
    assert same["S_mGy_per_MBq_s"] == pytest.approx(s_ref, rel=1e-12)
    half = dm.organ_dose(1000.0, source="liver", organ_mass_g=m_ref / 2)
    # electron part E_e/m_ref (0.1479 MeV; README: 1.317e-5 = 96 %) doubles, photon rest x 2^(2/3)
    s_e = 0.1479 * 1.602176634e-13 * 1e6 * 1e3 / (m_ref * 1e-3)
    assert s_e == pytest.approx(1.317e-5, rel=2e-3)
    expect = 2 * s_e + (s_ref - s_e) * 2 ** (2 / 3)
    assert half["S_mGy_per_MBq_s"] == pytest.approx(expect, rel=1e-12)
    assert 1.98 < half["S_mGy_per_MBq_s"] / s_ref < 2.0


@pytest.mark.parametrize(("kw", "match"), [
    (dict(source="pancreas"), "no OpenDose table for source organ 'pancreas'"),
    (dict(source="liver", target="Livr"), "target 'Livr' is not in the OpenDose"),
    (dict(source="liver", phantom="ICRP_89"), "unknown phantom"),
    (dict(source="liver", organ_mass_g=-5.0), "organ_mass_g must be a positive"),
    (dict(source="liver", target="Spleen", organ_mass_g=100.0), "scales the self S value only"),
    (dict(source="liver", nuclide="Y-90"), "Lu-177 only"),
])
def test_bad_input(kw, match):
    with pytest.raises(TheraquantError, match=match):
        dm.organ_dose(1000.0, **kw)
