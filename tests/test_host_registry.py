"""NodeRegistry: /object_info rendering and the canvas widget layout rules (protocol 4.1, 4.2, 6.3)."""

import json

from test_host_support import isolated_io, make_registry  # noqa: F401 (autouse fixture)

from framefold.host.registry import NodeRegistry, WidgetSlot, default_registry
from framefold.host.validate import validate_prompt


def test_object_info_entry_matches_comfyui_shape():
    info = make_registry().object_info()
    assert info["TSource"] == {
        "input": {
            "required": {
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**53 - 1, "tooltip": "seed"}),
                "size": ("INT", {"default": 4, "min": 1, "max": 64, "tooltip": "size"}),
                "label": (["red", "green", "blue"], {"default": "red", "tooltip": "label"}),
            }
        },
        "input_order": {"required": ["seed", "size", "label"]},
        "output": ["TEST_DATA"],
        "output_is_list": [False],
        "output_name": ["data"],
        "output_tooltips": ["the data"],
        "name": "TSource",
        "display_name": "Test Source",
        "description": "test source",
        "python_module": "custom_nodes.framefold",
        "category": "FrameFold/test",
        "output_node": False,
        "search_aliases": [],
    }
    save = info["TSave"]
    assert save["output_node"] is True and save["output"] == [] and save["output_name"] == []
    assert save["input_order"] == {
        "required": ["data", "filename_prefix"],
        "hidden": ["prompt", "extra_pnginfo", "unique_id"],
    }
    assert info["TScale"]["input_order"] == {"required": ["data", "factor"], "optional": ["note"]}
    assert info["TScale"]["description"] == "" and info["TScale"]["output_name"] == ["TEST_DATA"]
    json.dumps(info)  # serialisable as the HTTP body


def test_pack_name_sets_python_module():
    registry = NodeRegistry(make_registry()._classes, pack_name="Some_Other_Name")
    assert registry.node_info("TConst")["python_module"] == "custom_nodes.Some_Other_Name"
    assert registry.display_name("TConst") == "TConst"  # no display names given


class Layout:
    """Widget layout cases in one class."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": (["a.png"], {"image_upload": True}),
                "socket": ("LATENT",),
                "noise_seed": ("INT", {"default": 0}),
                "forced": ("INT", {"forceInput": True}),
                "mode": (["x", "y"], {"control_after_generate": True}),
                "video": (["v.mp4"], {"video_upload": True}),
                "text": ("STRING", {"multiline": True}),
            },
            "optional": {
                "other": (["o"], {"image_upload": True}),
                "amount": ("FLOAT", {"default": 1.0}),
                "seed": ("INT", {"control_after_generate": False}),
                "steps": ("INT", {"control_after_generate": True}),
                "new_combo": ("COMBO", {"options": ["p", "q"]}),
            },
        }

    RETURN_TYPES = ()
    FUNCTION = "run"


def test_widget_layout_rules():
    registry = NodeRegistry({"Layout": Layout})
    assert registry.widget_layout("Layout") == [
        WidgetSlot("input", "image"),
        WidgetSlot("input", "noise_seed"),
        WidgetSlot("control", "noise_seed"),  # implicit for seed names
        WidgetSlot("input", "mode"),
        WidgetSlot("control", "mode"),
        WidgetSlot("filter", "mode"),
        WidgetSlot("input", "video"),
        WidgetSlot("input", "text"),
        WidgetSlot("input", "other"),
        WidgetSlot("input", "amount"),  # FLOAT: no control unless asked
        WidgetSlot("input", "seed"),  # explicit False disables it
        WidgetSlot("input", "steps"),
        WidgetSlot("control", "steps"),
        WidgetSlot("input", "new_combo"),
        WidgetSlot("upload", "image"),  # one button, for the first required upload combo
    ]


class Broken:
    """INPUT_TYPES fails (e.g. a folder it lists is unreadable)."""

    @classmethod
    def INPUT_TYPES(cls):
        raise OSError("folder unreadable")

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"


def test_broken_class_is_left_out_of_object_info_and_reported_by_validation():
    registry = NodeRegistry({"Broken": Broken, **make_registry()._classes})
    info = registry.object_info()
    assert "Broken" not in info and "TSource" in info
    result = validate_prompt({"1": {"class_type": "Broken", "inputs": {}}}, registry)
    assert not result.ok
    assert result.node_errors["1"]["errors"][0]["type"] == "exception_during_validation"
    assert "folder unreadable" in result.node_errors["1"]["errors"][0]["message"]


def test_default_registry_holds_framefold_nodes():
    registry = default_registry()
    assert all(name.startswith("FrameFold") for name in registry.names())
    for name in registry.names():
        info = registry.node_info(name)
        assert info["python_module"] == "custom_nodes.framefold"
        assert info["category"].startswith("FrameFold")
