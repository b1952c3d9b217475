"""UI <-> API workflow conversion on hand-written canvas files (tests/data/ui)."""

import copy
import json
from pathlib import Path

import pytest
from test_host_support import isolated_io, make_registry  # noqa: F401 (autouse fixture)

from framefold.host.workflow import WorkflowError, api_to_ui, detect_format, load_workflow, normalize_api, ui_to_api

UI_DIR = Path(__file__).parent / "data" / "ui"


def load_ui(name):
    return json.loads((UI_DIR / name).read_text())


def inputs_of(api):
    """``{node_id: (class_type, inputs)}`` for compact comparisons."""
    return {k: (v["class_type"], v["inputs"]) for k, v in api.items()}


@pytest.fixture
def registry():
    return make_registry()


def test_detect_format():
    assert detect_format(load_ui("seed_control.json")) == "ui"
    api = {"1": {"class_type": "TConst", "inputs": {"value": 1}}}
    assert detect_format(api) == "api"
    assert detect_format({"prompt": api, "client_id": "x"}) == "api"
    assert normalize_api({"prompt": api}) == api
    with pytest.raises(WorkflowError):
        detect_format({"hello": 1})


def test_seed_with_control_after_generate_uses_the_stored_seed(registry):
    api = ui_to_api(load_ui("seed_control.json"), registry)
    assert inputs_of(api) == {
        "1": ("TSource", {"seed": 1234, "size": 8, "label": "green"}),
        "2": ("TSave", {"data": ["1", 0], "filename_prefix": "seeded"}),
    }
    assert api["2"]["_meta"]["title"] == "Save it"
    assert api["1"]["_meta"]["title"] == "Test Source"


def test_bypassed_node_is_rewired_by_type_and_muted_node_dropped(registry):
    api = ui_to_api(load_ui("bypass_mute.json"), registry)
    # node 3 (bypassed) has an INT input at slot 0; its TEST_DATA output passes its TEST_DATA input through
    assert set(api) == {"1", "2", "4"}
    assert api["4"]["inputs"] == {"data": ["1", 0], "filename_prefix": "bypassed"}


def test_reroute_primitive_and_schema1_links(registry):
    api = ui_to_api(load_ui("reroute_primitive_schema1.json"), registry)
    assert inputs_of(api) == {
        "1": ("TSource", {"seed": 99, "size": 4, "label": "blue"}),
        "3": ("TSave", {"data": ["1", 0], "filename_prefix": "rerouted"}),
    }


def test_converted_widget_takes_the_link(registry):
    api = ui_to_api(load_ui("converted_widget.json"), registry)
    assert api["2"]["inputs"] == {"seed": 3, "size": ["1", 0], "label": "red"}
    assert api["3"]["inputs"] == {"data": ["2", 0], "factor": 2.5, "note": "a note"}


def test_subgraph_is_flattened_with_prefixed_ids(registry):
    api = ui_to_api(load_ui("subgraph.json"), registry)
    assert inputs_of(api) == {
        "1": ("TSource", {"seed": 1, "size": 2, "label": "green"}),
        "2:4": ("TScale", {"data": ["1", 0], "factor": 4.5, "note": ""}),  # promoted widget value
        "2:5": ("TScale", {"data": ["2:4", 0], "factor": 3.0, "note": "inner"}),
        "3": ("TSave", {"data": ["2:5", 0], "filename_prefix": "sub"}),
    }


def test_upload_button_and_explicit_control_flags(registry):
    api = ui_to_api(load_ui("controls_upload.json"), registry)
    assert api["1"]["inputs"] == {"image": "clip.png"}
    assert api["2"]["inputs"] == {"strength": 0.25, "choice": "y", "seed": 3, "flag": True}


def test_named_widget_values_are_preferred(registry):
    api = ui_to_api(load_ui("named_values.json"), registry)
    assert api["1"]["inputs"] == {"seed": 5, "size": 9, "label": "blue"}
    assert api["2"]["inputs"] == {"data": ["1", 0], "filename_prefix": "named"}


def test_shifted_positional_widgets_are_reported(registry):
    ui = load_ui("named_values.json")
    del ui["nodes"][0]["widgets_values_named"]  # [5, 9, "blue"] lacks the control slot
    with pytest.raises(WorkflowError) as info:
        ui_to_api(ui, registry)
    text = str(info.value)
    assert "node 1 (TSource)" in text and "control_after_generate" in text


def test_missing_trailing_widget_values_fall_back_to_defaults(registry):
    ui = load_ui("converted_widget.json")
    ui["nodes"][2]["widgets_values"] = [2.5]  # note missing
    api = ui_to_api(ui, registry)
    assert api["3"]["inputs"]["note"] == ""


def test_array_literals_are_wrapped_and_unwrapped():
    api = {"1": {"class_type": "TAny", "inputs": {"value": {"__value__": [1, 2, 3]}}}}
    assert normalize_api(api)["1"]["inputs"]["value"] == [1, 2, 3]


def test_unknown_class_is_kept_for_validation(registry):
    ui = load_ui("seed_control.json")
    ui["nodes"][0]["type"] = "NotInstalled"
    api = ui_to_api(ui, registry)
    assert api["1"]["class_type"] == "NotInstalled"


def test_load_workflow_from_file(registry):
    api, ui = load_workflow(UI_DIR / "seed_control.json", registry)
    assert ui["version"] == 0.4 and api["1"]["inputs"]["seed"] == 1234
    with pytest.raises(WorkflowError, match="not found"):
        load_workflow(UI_DIR / "does_not_exist.json", registry)


ROUND_TRIP_FILES = [
    "seed_control.json",
    "bypass_mute.json",
    "reroute_primitive_schema1.json",
    "converted_widget.json",
    "controls_upload.json",
    "named_values.json",
]


@pytest.mark.parametrize("name", ROUND_TRIP_FILES)
def test_api_to_ui_round_trip(registry, name):
    api = ui_to_api(load_ui(name), registry)
    ui = api_to_ui(copy.deepcopy(api), registry)
    assert ui["version"] == 0.4
    assert ui_to_api(ui, registry) == api


def test_api_to_ui_layout_and_widgets(registry):
    api = {
        "1": {"class_type": "TSource", "inputs": {"seed": 7, "size": 3, "label": "blue"}, "_meta": {"title": "Src"}},
        "2": {"class_type": "TConst", "inputs": {"value": 2}, "_meta": {"title": "Test Const"}},
        "3": {
            "class_type": "TScale",
            "inputs": {"data": ["1", 0], "factor": ["2", 0], "note": "n"},
            "_meta": {"title": "Test Scale"},
        },
        "4": {
            "class_type": "TSave",
            "inputs": {"data": ["3", 0], "filename_prefix": "x"},
            "_meta": {"title": "Test Save"},
        },
    }
    ui = api_to_ui(api, registry)
    nodes = {n["id"]: n for n in ui["nodes"]}
    assert nodes[1]["widgets_values"] == [7, "fixed", 3, "blue"]
    assert nodes[3]["widgets_values"] == [1.0, "n"]  # the linked factor keeps its default in its slot
    assert [i["name"] for i in nodes[3]["inputs"]] == ["data", "factor", "note"]
    assert nodes[3]["inputs"][1]["widget"] == {"name": "factor"} and nodes[3]["inputs"][1]["link"] is not None
    assert nodes[4]["pos"][0] > nodes[3]["pos"][0] > nodes[1]["pos"][0]
    links = {link[0]: link for link in ui["links"]}
    for node in ui["nodes"]:
        for slot, inp in enumerate(node["inputs"]):
            if inp["link"] is not None:
                assert links[inp["link"]][3:5] == [node["id"], slot]
        for slot, out in enumerate(node["outputs"]):
            for link_id in out["links"]:
                assert links[link_id][1:3] == [node["id"], slot]
    assert ui["last_link_id"] == 3 and ui["last_node_id"] == 4
    assert ui_to_api(ui, registry) == api


def test_api_to_ui_rejects_unknown_class_and_bad_links(registry):
    with pytest.raises(WorkflowError, match="unknown node class"):
        api_to_ui({"1": {"class_type": "Nope", "inputs": {}}}, registry)
    with pytest.raises(WorkflowError, match="not in the prompt"):
        api_to_ui({"1": {"class_type": "TSave", "inputs": {"data": ["9", 0], "filename_prefix": "a"}}}, registry)


def test_workflow_embedded_in_png_and_video(registry, tmp_path):
    import av
    import numpy as np

    from framefold.pipelines.video.png import encode_png

    ui = load_ui("seed_control.json")
    png = tmp_path / "frame.png"
    png.write_bytes(encode_png(np.zeros((4, 4, 3), np.uint8), text={"workflow": json.dumps(ui), "prompt": "{}"}))
    api, loaded_ui = load_workflow(png, registry)
    assert loaded_ui == ui and api["1"]["inputs"]["seed"] == 1234

    video = tmp_path / "clip.mkv"
    api_only = ui_to_api(ui, registry)
    with av.open(str(video), "w") as container:
        container.metadata["prompt"] = json.dumps(api_only)
        stream = container.add_stream("ffv1", rate=4)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuv420p"
        frame = av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    api, loaded_ui = load_workflow(video, registry)
    assert loaded_ui is None and api == normalize_api(api_only)

    bare = tmp_path / "bare.png"
    bare.write_bytes(encode_png(np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(WorkflowError, match="no embedded"):
        load_workflow(bare, registry)


def test_saved_prompt_request_body_keeps_its_workflow(registry):
    ui = load_ui("seed_control.json")
    api = ui_to_api(ui, registry)
    body = {"prompt": api, "client_id": "abc", "extra_data": {"extra_pnginfo": {"workflow": ui}}}
    loaded_api, loaded_ui = load_workflow(body, registry)
    assert loaded_api == normalize_api(api) and loaded_ui == ui
