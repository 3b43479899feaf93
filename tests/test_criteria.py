"""Criteria presets as data, and user TOML files."""

from __future__ import annotations

import pytest

from cnsvol.response.criteria import PRESETS, Criteria, get_criteria, load_criteria_file
from cnsvol.errors import CriteriaError


def test_presets_carry_the_published_thresholds():
    lin, tbcrc, rano = PRESETS["lin2009"], PRESETS["tbcrc022"], PRESETS["rano-bm-vol"]
    assert (lin.response_decrease_pct, lin.progression_increase_pct) == (50.0, 40.0)
    assert (tbcrc.response_decrease_pct, tbcrc.progression_increase_pct) == (50.0, 40.0)
    assert tbcrc.new_lesion_min_diameter_mm == 6.0
    assert rano.max_target_lesions == 5 and rano.confirmation_min_days == 28
    assert all(c.measurable_min_diameter_mm == 10.0 for c in PRESETS.values())
    assert all(c.responder_reduction_pct == 20.0 for c in PRESETS.values())
    assert all(c.progression_reference == "nadir" for c in PRESETS.values())


def test_issue_11_rules_per_preset():
    """Measurability, new-lesion floor, non-target rule, radiotherapy window, compartments."""
    table = {  # slices, perpendicular mm, new-lesion floor mm, RT window days, compartments
        "lin2009": (1, 0.0, 5.0, None, None),
        "tbcrc022": (1, 0.0, 6.0, None, None),
        "rano-bm-vol": (2, 5.0, 5.0, None, None),
        "rano2-vol": (2, 10.0, 10.0, 84, ("enhancing",)),
    }
    assert set(table) == set(PRESETS)
    for name, expected in table.items():
        c = PRESETS[name]
        got = (c.measurable_min_slices, c.measurable_min_perpendicular_mm,
               c.new_lesion_min_diameter_mm, c.radiotherapy_confirmation_days,
               c.response_compartments)
        assert got == expected, name
        assert (c.nontarget_progression_growth_mm, c.nontarget_progression_small_below_mm,
                c.nontarget_progression_small_reach_mm) == (5.0, 6.0, 10.0), name
    r2 = PRESETS["rano2-vol"]
    assert (r2.response_decrease_pct, r2.progression_increase_pct) == (65.0, 40.0)
    assert r2.confirmation_min_days == 28 and r2.cr_requires_off_steroids
    assert r2.extracns_is_progression is False and r2.neuro_worse_is_progression is True


@pytest.mark.parametrize("body, message", [
    ("measurable_min_slices = 0", "measurable_min_slices must be >= 1"),
    ("measurable_min_slices = 1.5", "measurable_min_slices must be a whole number"),
    ("measurable_min_perpendicular_mm = -1", "measurable_min_perpendicular_mm must be >= 0"),
    ("nontarget_progression_small_below_mm = 12", r"must be >= 0 and <= "
                                                  r"nontarget_progression_small_reach_mm \(10.0\)"),
    ("radiotherapy_confirmation_days = -3", "radiotherapy_confirmation_days must be >= 0"),
    ('response_compartments = ["tumour"]', "response_compartments must list compartments"),
    ('response_compartments = "enhancing"', "response_compartments must be a list"),
])
def test_new_fields_are_validated(tmp_path, body, message):
    path = tmp_path / "c.toml"
    path.write_text(f'extends = "rano-bm-vol"\n{body}\n')
    with pytest.raises(CriteriaError, match=message):
        load_criteria_file(path)


def test_a_criteria_file_sets_the_new_fields(tmp_path):
    path = tmp_path / "nonenhancing.toml"
    path.write_text('extends = "rano2-vol"\nresponse_compartments = ["nonenhancing"]\n'
                    'radiotherapy_confirmation_days = "none"\nmeasurable_min_slices = 3\n')
    c = load_criteria_file(path)
    assert c.response_compartments == ("nonenhancing",)
    assert c.radiotherapy_confirmation_days is None and c.measurable_min_slices == 3
    # a file written before these fields existed still loads, with cnsvol's defaults
    old = tmp_path / "old.toml"
    old.write_text("".join(f"{k} = {_toml(v)}\n" for k, v in PRESETS["lin2009"].to_dict().items()
                           if k in _BEFORE))
    c = load_criteria_file(old)
    assert (c.measurable_min_slices, c.nontarget_progression_growth_mm) == (1, 5.0)


def _toml(value):
    if value is None:
        return '"none"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):  # enums included
        return f'"{value}"'
    return repr(value)


_BEFORE = (
    "name", "title", "source", "response_decrease_pct", "progression_increase_pct",
    "progression_reference", "progression_min_lesion_growth_mm", "measurable_min_diameter_mm",
    "max_target_lesions", "target_lesions", "new_lesion_is_progression",
    "new_lesion_min_diameter_mm", "confirmation_min_days", "cr_requires_off_steroids",
    "steroid_increase_blocks_response", "steroid_increase_is_progression",
    "neuro_worse_blocks_response", "neuro_worse_is_progression", "extracns_blocks_response",
    "extracns_is_progression", "responder_reduction_pct",
)


def test_rano_volume_thresholds_are_the_sphere_equivalents_of_the_diameter_rules():
    # 30% diameter decrease -> 1 - 0.7**3 = 65.7% volume decrease; 20% increase -> 72.8%
    rano = PRESETS["rano-bm-vol"]
    assert abs((1 - 0.7**3) * 100 - rano.response_decrease_pct) < 1.0
    assert abs((1.2**3 - 1) * 100 - rano.progression_increase_pct) < 1.0


def test_every_preset_names_its_source():
    for c in PRESETS.values():
        assert c.source and c.title and c.name in PRESETS


def test_get_criteria_by_name_and_unknown_name():
    assert get_criteria("tbcrc022") is PRESETS["tbcrc022"]
    with pytest.raises(CriteriaError, match="unknown criteria 'recist'.*lin2009"):
        get_criteria("recist")


def test_user_file_extending_a_preset(tmp_path):
    f = tmp_path / "mytrial.toml"
    f.write_text('extends = "lin2009"\nresponse_decrease_pct = 30\nmax_target_lesions = 3\n')
    c = load_criteria_file(f)
    assert c.name == "mytrial"
    assert c.response_decrease_pct == 30 and c.max_target_lesions == 3
    assert c.progression_increase_pct == 40.0  # inherited
    assert get_criteria(str(f)) == c


def test_user_file_complete_without_extends_and_none_values(tmp_path):
    fields = PRESETS["tbcrc022"].to_dict()
    fields.update(name="full", max_target_lesions="none", confirmation_min_days="None")
    lines = []
    for k, v in fields.items():
        if isinstance(v, bool):
            lines.append(f"{k} = {str(v).lower()}")
        elif v is None:
            lines.append(f'{k} = "none"')
        elif isinstance(v, str):
            lines.append(f'{k} = "{v}"')
        else:
            lines.append(f"{k} = {v}")
    f = tmp_path / "full.toml"
    f.write_text("[criteria]\n" + "\n".join(lines) + "\n")
    c = load_criteria_file(f)
    assert c.max_target_lesions is None and c.confirmation_min_days is None
    assert c.new_lesion_min_diameter_mm == 6.0


@pytest.mark.parametrize(
    "body, message",
    [
        ('extends = "lin2009"\nresponse_pct = 30\n', "unknown field.*response_pct"),
        ("response_decrease_pct = 30\n", "missing field.*progression_increase_pct"),
        ('extends = "recist"\n', "not a preset"),
        ('extends = "lin2009"\nresponse_decrease_pct = "thirty"\n', "must be a number"),
        ('extends = "lin2009"\nnew_lesion_is_progression = 1\n', "must be true or false"),
        ('extends = "lin2009"\nresponse_decrease_pct = 150\n', r"\(0, 100\]"),
        ('extends = "lin2009"\nprogression_reference = "best"\n', "'nadir' or 'baseline'"),
        ('extends = "lin2009"\nmax_target_lesions = 2.5\n', "whole number"),
        ("this is not toml = = \n", "cannot parse TOML"),
    ],
)
def test_user_file_errors_are_specific(tmp_path, body, message):
    f = tmp_path / "bad.toml"
    f.write_text(body)
    with pytest.raises(CriteriaError, match=message) as info:
        load_criteria_file(f)
    assert "bad.toml" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(CriteriaError, match="not found"):
        load_criteria_file(tmp_path / "nope.toml")


def test_criteria_validation_in_code():
    with pytest.raises(CriteriaError, match="progression_increase_pct"):
        Criteria(**{**PRESETS["lin2009"].to_dict(), "progression_increase_pct": 0})


def test_every_problem_of_a_criteria_file_is_reported_at_once_in_a_fixed_order(tmp_path):
    """An unknown field, a mistyped one and values out of range: one message listing them all,
    the known fields in the order of Criteria (the same message every time)."""
    path = tmp_path / "bad.toml"
    path.write_text('extends = "lin2009"\nfoo = 1\nresponse_decrease_pct = "thirty"\n'
                    "max_target_lesions = -1\nprogression_increase_pct = -3\n")
    with pytest.raises(CriteriaError) as err:
        load_criteria_file(path)
    message = str(err.value)
    for part in ("unknown field(s) foo", "response_decrease_pct must be a number, got 'thirty'",
                 "max_target_lesions must be >= 1, got -1",
                 "progression_increase_pct must be > 0, got -3"):
        assert part in message, part
    assert "Known fields: name, title, source, response_decrease_pct," in message
    with pytest.raises(CriteriaError) as again:
        load_criteria_file(path)
    assert str(again.value) == message
    with pytest.raises(CriteriaError, match="not found. Fix: check the path"):
        load_criteria_file(tmp_path / "missing.toml")
