"""Validation: every error type, all reported at once in ComfyUI's node_errors shape."""

import pytest
from test_host_support import isolated_io, make_registry  # noqa: F401 (autouse fixture)

from framefold.host.validate import coerce_literal, format_validation, validate_prompt


@pytest.fixture
def registry():
    return make_registry()


def good_prompt():
    return {
        "1": {"class_type": "TSource", "inputs": {"seed": 3, "size": 4, "label": "red"}},
        "2": {"class_type": "TScale", "inputs": {"data": ["1", 0], "factor": 2.0}},
        "3": {"class_type": "TSave", "inputs": {"data": ["2", 0], "filename_prefix": "p"}},
    }


def error_types(result):
    return {
        (node_id, e["type"], e["extra_info"].get("input_name"))
        for node_id, entry in result.node_errors.items()
        for e in entry["errors"]
    }


def test_valid_prompt(registry):
    result = validate_prompt(good_prompt(), registry)
    assert result.ok and result.error is None and result.node_errors == {} and result.outputs == ["3"]


def test_every_error_reported_at_once(registry):
    prompt = {
        "1": {"class_type": "TSource", "inputs": {"seed": -1, "size": 65, "label": "purple"}},
        "2": {"class_type": "TScale", "inputs": {"data": ["1", 0]}},  # factor missing
        "3": {"class_type": "TSave", "inputs": {"data": ["2", 0], "filename_prefix": "p"}},
        "4": {"class_type": "TSave", "inputs": {"data": ["42", 0], "filename_prefix": "p"}},  # missing node
        "5": {"class_type": "TSave", "inputs": {"data": ["1", 3], "filename_prefix": "p"}},  # bad output index
        "6": {"class_type": "TConst", "inputs": {"value": 1}},
        "7": {"class_type": "TScale", "inputs": {"data": ["6", 0], "factor": "abc"}},  # INT -> TEST_DATA
        "8": {"class_type": "TSave", "inputs": {"data": ["7", 0], "filename_prefix": "p"}},
        "9": {"class_type": "TChecked", "inputs": {"data": ["1", 0], "text": "bad", "level": 3}},
        "10": {"class_type": "TSave", "inputs": {"data": ["9", 0], "filename_prefix": "p"}},
        "11": {"class_type": "TScale", "inputs": {"data": ["12", 0], "factor": 1.0}},
        "12": {"class_type": "TScale", "inputs": {"data": ["11", 0], "factor": 1.0}},
        "13": {"class_type": "TSave", "inputs": {"data": ["12", 0], "filename_prefix": "p"}},
        "14": {"class_type": "NotInstalled", "inputs": {}},
    }
    result = validate_prompt(prompt, registry)
    assert not result.ok
    assert result.error["type"] == "missing_node_type"
    assert error_types(result) == {
        ("1", "value_smaller_than_min", "seed"),
        ("1", "value_bigger_than_max", "size"),
        ("1", "value_not_in_list", "label"),
        ("2", "required_input_missing", "factor"),
        ("4", "bad_linked_input", "data"),
        ("5", "bad_linked_input", "data"),
        ("7", "return_type_mismatch", "data"),
        ("7", "invalid_input_type", "factor"),
        ("9", "custom_validation_failed", None),
        ("11", "dependency_cycle", None),
        ("12", "dependency_cycle", None),
        ("14", "missing_node_type", None),
    }
    assert result.node_errors["1"]["class_type"] == "TSource"
    assert sorted(result.node_errors["1"]["dependent_outputs"]) == ["10", "3", "5"]
    text = format_validation(result)
    assert "node 2 (TScale), input 'factor': Required input is missing" in text
    assert "node 14 (NotInstalled)" in text
    assert "text must not be 'bad'" in text


def test_no_output_node(registry):
    result = validate_prompt({"1": {"class_type": "TConst", "inputs": {"value": 1}}}, registry)
    assert not result.ok and result.error["type"] == "prompt_no_outputs"


def test_failed_outputs_and_partial_validity(registry):
    prompt = good_prompt()
    prompt["4"] = {"class_type": "TSave", "inputs": {"data": ["1", 0], "filename_prefix": 5}}  # 5 -> "5" coerced
    prompt["5"] = {"class_type": "TAny", "inputs": {"value": ["6", 0]}}
    prompt["6"] = {"class_type": "TConst", "inputs": {"value": 500}}
    result = validate_prompt(prompt, registry)
    assert result.ok and sorted(result.outputs) == ["3", "4"]  # ComfyUI semantics: valid outputs still run
    assert set(result.node_errors) == {"6"} and result.node_errors["6"]["dependent_outputs"] == ["5"]
    assert result.prompt["4"]["inputs"]["filename_prefix"] == "5"
    only_bad = {k: prompt[k] for k in ("5", "6")}
    result = validate_prompt(only_bad, registry)
    assert not result.ok and result.error["type"] == "prompt_outputs_failed_validation"
    assert "Value 500 bigger than max of 100" in result.error["details"]


def test_star_input_accepts_any_type_and_literals_are_coerced(registry):
    prompt = {
        "1": {"class_type": "TConst", "inputs": {"value": "7"}},
        "2": {"class_type": "TAny", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "TSource", "inputs": {"seed": 4.0, "size": "8", "label": "red"}},
        "4": {"class_type": "TScale", "inputs": {"data": ["3", 0], "factor": 2}},
        "5": {"class_type": "TAny", "inputs": {"value": ["4", 0]}},
        "6": {"class_type": "TControls", "inputs": {"strength": 1, "choice": "x", "seed": 1, "flag": "true"}},
        "7": {"class_type": "TAny", "inputs": {"value": ["6", 0]}},
    }
    result = validate_prompt(prompt, registry)
    assert result.ok and result.node_errors == {}
    coerced = result.prompt
    assert coerced["1"]["inputs"]["value"] == 7
    assert coerced["3"]["inputs"]["seed"] == 4 and isinstance(coerced["3"]["inputs"]["seed"], int)
    assert coerced["3"]["inputs"]["size"] == 8
    assert isinstance(coerced["4"]["inputs"]["factor"], float)
    assert coerced["6"]["inputs"]["flag"] is True


def test_validate_inputs_exempts_its_inputs_from_range_checks(registry):
    prompt = good_prompt()
    prompt["4"] = {"class_type": "TChecked", "inputs": {"data": ["1", 0], "text": "fine", "level": 99}}
    prompt["5"] = {"class_type": "TAny", "inputs": {"value": ["4", 0]}}
    assert validate_prompt(prompt, registry).node_errors == {}


def test_upload_combo_relists_input_folder(registry, isolated_io):
    prompt = {
        "1": {"class_type": "TUpload", "inputs": {"image": "new.png"}},
        "2": {"class_type": "TAny", "inputs": {"value": ["1", 0]}},
    }
    result = validate_prompt(prompt, registry)
    assert error_types(result) == {("1", "value_not_in_list", "image")}
    (isolated_io["input"] / "new.png").write_bytes(b"png")
    assert validate_prompt(prompt, registry).node_errors == {}


def test_literal_for_a_socket_input_is_rejected(registry):
    prompt = {"1": {"class_type": "TSave", "inputs": {"data": "not a link", "filename_prefix": "p"}}}
    result = validate_prompt(prompt, registry)
    assert error_types(result) == {("1", "invalid_input_type", "data")}


def test_targets_limit_validation(registry):
    prompt = good_prompt()
    prompt["4"] = {"class_type": "TSave", "inputs": {"data": ["1", 0]}}  # broken, not targeted
    result = validate_prompt(prompt, registry, targets=["3"])
    assert result.ok and result.node_errors == {} and result.outputs == ["3"]
    assert not validate_prompt(prompt, registry, targets=["99"]).ok


@pytest.mark.parametrize(
    "value,spec,expected",
    [
        (3, ("INT",), 3),
        (3.0, ("INT",), 3),
        ("12", ("INT",), 12),
        (1, ("FLOAT",), 1.0),
        ("0.5", ("FLOAT",), 0.5),
        (5, ("STRING",), "5"),
        (True, ("BOOLEAN",), True),
        ("false", ("BOOLEAN",), False),
    ],
)
def test_coercion(value, spec, expected):
    assert coerce_literal(value, spec) == (expected, None)


@pytest.mark.parametrize(
    "value,spec",
    [(True, ("INT",)), (3.5, ("INT",)), ("x", ("FLOAT",)), ([1], ("STRING",)), ("yes", ("BOOLEAN",)), (None, ("INT",))],
)
def test_coercion_rejects(value, spec):
    coerced, reason = coerce_literal(value, spec)
    assert coerced is None and reason
