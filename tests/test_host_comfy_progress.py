"""nodes/_comfy.py: progress reports reach ComfyUI's ProgressBar; ComfyUI's interrupt exception propagates."""

import sys
import types

import pytest

from framefold.nodes import _comfy
from framefold.pipelines import progress


class FakeInterrupt(Exception):
    """Stands in for comfy.model_management.InterruptProcessingException."""


@pytest.fixture
def fake_comfy(monkeypatch):
    updates = []
    state = {"interrupted": False}

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None, preview=None):
            updates.append((value, total))

    def throw_if_interrupted():
        if state["interrupted"]:
            raise FakeInterrupt()

    comfy = types.ModuleType("comfy")
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    mm = types.ModuleType("comfy.model_management")
    mm.throw_exception_if_processing_interrupted = throw_if_interrupted
    comfy.utils, comfy.model_management = utils, mm
    monkeypatch.setitem(sys.modules, "comfy", comfy)
    monkeypatch.setitem(sys.modules, "comfy.utils", utils)
    monkeypatch.setitem(sys.modules, "comfy.model_management", mm)
    return updates, state


class Looper:
    FUNCTION = "run"

    def run(self, steps):
        for i in range(steps):
            progress.report(i + 1, steps)
        return (steps,)


def test_outside_comfyui_nothing_changes():
    assert _comfy.comfy_modules() is None
    with _comfy.host_progress() as sink:
        assert sink is None
    cls = type("L", (Looper,), {})
    assert _comfy.wrap_node_class(cls).run is Looper.run


def test_reports_reach_the_comfy_progress_bar(fake_comfy):
    updates, state = fake_comfy
    cls = _comfy.wrap_node_class(type("L", (Looper,), {}))
    assert cls().run(3) == (3,)
    assert updates == [(1, 3), (2, 3), (3, 3)]
    assert _comfy.wrap_node_class(cls).run is cls.run  # idempotent


def test_comfy_interrupt_exception_propagates(fake_comfy):
    updates, state = fake_comfy
    state["interrupted"] = True
    cls = _comfy.wrap_node_class(type("L", (Looper,), {}))
    with pytest.raises(FakeInterrupt):
        cls().run(5)
    assert len(updates) == 1
