"""Test-only node classes and a registry of them, shared by the host tests (no FrameFold node needed)."""

import collections
import json
import os
import threading
import time

import pytest

from framefold.host.registry import NodeRegistry
from framefold.nodes import _folders
from framefold.nodes._errors import NodeInputError
from framefold.pipelines import progress

CALLS = collections.Counter()
LOOP_STARTED = threading.Event()


class TSource:
    """Makes a small data dict from a seed, a size and a colour label."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**53 - 1, "tooltip": "seed"}),
                "size": ("INT", {"default": 4, "min": 1, "max": 64, "tooltip": "size"}),
                "label": (["red", "green", "blue"], {"default": "red", "tooltip": "label"}),
            }
        }

    RETURN_TYPES = ("TEST_DATA",)
    RETURN_NAMES = ("data",)
    OUTPUT_TOOLTIPS = ("the data",)
    FUNCTION = "run"
    CATEGORY = "FrameFold/test"
    DESCRIPTION = "test source"

    def run(self, seed, size, label):
        CALLS["TSource"] += 1
        return ({"seed": seed, "size": size, "label": label},)


class TConst:
    """An integer constant."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"default": 1, "min": 0, "max": 100})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"
    CATEGORY = "FrameFold/test"

    def run(self, value):
        CALLS["TConst"] += 1
        return (value,)


class TScale:
    """Scales the data: adds a factor and an optional note."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"data": ("TEST_DATA",), "factor": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0})},
            "optional": {"note": ("STRING", {"default": ""})},
        }

    RETURN_TYPES = ("TEST_DATA",)
    FUNCTION = "run"
    CATEGORY = "FrameFold/test"

    def run(self, data, factor, note=""):
        CALLS["TScale"] += 1
        return ({**data, "factor": factor, "note": note},)


class TMerge:
    """Two data inputs into one (a node with several same-typed inputs, for bypass routing)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"first": ("INT", {"forceInput": True}), "data": ("TEST_DATA",)}}

    RETURN_TYPES = ("TEST_DATA",)
    FUNCTION = "run"
    CATEGORY = "FrameFold/test"

    def run(self, first, data):
        CALLS["TMerge"] += 1
        return ({**data, "first": first},)


class TSave:
    """Output node: writes the data as JSON into the output folder and reports the file."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"data": ("TEST_DATA",), "filename_prefix": ("STRING", {"default": "test"})},
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"},
        }

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"
    CATEGORY = "FrameFold/test"

    def save(self, data, filename_prefix, prompt=None, extra_pnginfo=None, unique_id=None):
        CALLS["TSave"] += 1
        out = _folders.io_dir("output")
        name = f"{filename_prefix}_{unique_id}.json"
        tmp = out / (name + ".tmp")
        tmp.write_text(json.dumps({"data": data, "has_workflow": bool(extra_pnginfo), "id": unique_id}))
        os.replace(tmp, out / name)
        return {"ui": {"images": [{"filename": name, "subfolder": "", "type": "output"}]}}


class TFail:
    """Fails on purpose (a runtime error or a NodeInputError)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"data": ("TEST_DATA",), "kind": (["runtime", "input"],)}}

    RETURN_TYPES = ("TEST_DATA",)
    FUNCTION = "run"
    CATEGORY = "FrameFold/test"

    def run(self, data, kind):
        CALLS["TFail"] += 1
        if kind == "input":
            raise NodeInputError("TFail", "kind", "something this node cannot do")
        raise RuntimeError("boom")


class TLoop:
    """Loops with progress reports; with ``steps`` = 0 it loops until interrupted."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"data": ("TEST_DATA",), "steps": ("INT", {"default": 3, "min": 0, "max": 1000})}}

    RETURN_TYPES = ("TEST_DATA",)
    FUNCTION = "run"
    CATEGORY = "FrameFold/test"

    def run(self, data, steps):
        CALLS["TLoop"] += 1
        LOOP_STARTED.set()
        step = 0
        deadline = time.monotonic() + 20
        while (steps == 0 and time.monotonic() < deadline) or step < steps:
            step += 1
            progress.report(step, max(steps, step), preview=None)
            if steps == 0:
                time.sleep(0.005)
        return ({**data, "looped": step},)


class TUpload:
    """Upload combo: lists the input folder every time INPUT_TYPES is evaluated."""

    @classmethod
    def INPUT_TYPES(cls):
        files = sorted(p.name for p in _folders.io_dir("input").iterdir() if p.is_file())
        return {"required": {"image": (files, {"image_upload": True})}}

    RETURN_TYPES = ("TEST_DATA",)
    FUNCTION = "run"
    CATEGORY = "FrameFold/test"

    def run(self, image):
        return ({"image": image},)


class TControls:
    """Widgets with explicit control_after_generate flags (FLOAT on, combo on, seed explicitly off)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "strength": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "control_after_generate": True}),
                "choice": (["x", "y"], {"control_after_generate": True}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 10, "control_after_generate": False}),
                "flag": ("BOOLEAN", {"default": False}),
            }
        }

    RETURN_TYPES = ("TEST_DATA",)
    FUNCTION = "run"
    CATEGORY = "FrameFold/test"

    def run(self, strength, choice, seed, flag):
        return ({"strength": strength, "choice": choice, "seed": seed, "flag": flag},)


class TChecked:
    """Custom validation: ``text`` must not be 'bad'; ``level`` is checked by VALIDATE_INPUTS, not by max."""

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "data": ("TEST_DATA",),
                "text": ("STRING", {"default": "ok"}),
                "level": ("INT", {"default": 1, "min": 0, "max": 5}),
            }
        }

    RETURN_TYPES = ("TEST_DATA",)
    FUNCTION = "run"
    CATEGORY = "FrameFold/test"

    @classmethod
    def VALIDATE_INPUTS(cls, text, level):
        if text == "bad":
            return "text must not be 'bad'"
        return True

    def run(self, data, text, level):
        return ({**data, "text": text, "level": level},)


class TAlways:
    """IS_CHANGED returns NaN: never cached."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"data": ("TEST_DATA",)}}

    RETURN_TYPES = ("TEST_DATA",)
    FUNCTION = "run"
    CATEGORY = "FrameFold/test"

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def run(self, data):
        CALLS["TAlways"] += 1
        return (data,)


class TAny:
    """Output node accepting anything ('*'); shows its input as text."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",)}}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"
    CATEGORY = "FrameFold/test"

    def run(self, value):
        CALLS["TAny"] += 1
        return {"ui": {"text": [json.dumps(value, sort_keys=True)]}}


CLASSES = {
    c.__name__: c
    for c in (TSource, TConst, TScale, TMerge, TSave, TFail, TLoop, TUpload, TControls, TChecked, TAlways, TAny)
}
DISPLAY = {name: f"Test {name[1:]}" for name in CLASSES}


def make_registry():
    """A registry of the test node classes only."""
    return NodeRegistry(CLASSES, DISPLAY, pack_name="framefold")


@pytest.fixture(autouse=True)
def isolated_io(tmp_path):
    """Point the output/input/temp/user folders into tmp_path for the test (import this fixture)."""
    dirs = {name: tmp_path / name for name in ("output", "input", "temp", "user")}
    _folders.set_io_dirs(**dirs)
    CALLS.clear()
    LOOP_STARTED.clear()
    try:
        yield dirs
    finally:
        _folders.set_io_dirs(output=None, input=None, temp=None, user=None)
