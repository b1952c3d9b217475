"""Executor: order, cache, hidden inputs, progress, interrupt, errors, hooks order."""

import json
import threading

import pytest
from test_host_support import CALLS, LOOP_STARTED, isolated_io, make_registry  # noqa: F401 (autouse fixture)

from framefold.host.executor import ExecutionHooks, Executor


class Recorder(ExecutionHooks):
    """Records every hook call as a tuple."""

    def __init__(self):
        self.events = []

    def execution_start(self, prompt_id):
        self.events.append(("start",))

    def execution_cached(self, prompt_id, node_ids):
        self.events.append(("cached", tuple(node_ids)))

    def node_start(self, prompt_id, node_id):
        self.events.append(("node_start", node_id))

    def node_progress(self, prompt_id, node_id, value, max_value, preview):
        self.events.append(("progress", node_id, value, max_value))

    def node_executed(self, prompt_id, node_id, ui):
        self.events.append(("executed", node_id))

    def node_finished(self, prompt_id, node_id):
        self.events.append(("node_finished", node_id))

    def execution_error(self, prompt_id, node_id, node_type, exception, traceback_lines, executed):
        self.events.append(("error", node_id, node_type, str(exception), tuple(executed)))
        self.traceback = traceback_lines

    def execution_interrupted(self, prompt_id, node_id, node_type, executed):
        self.events.append(("interrupted", node_id, node_type))

    def execution_success(self, prompt_id):
        self.events.append(("success",))

    def kinds(self):
        return [e[0] for e in self.events]


def chain(seed=1):
    """Source(seed) -> Scale -> Save, plus an independent Const -> Any branch."""
    return {
        "1": {"class_type": "TSource", "inputs": {"seed": seed, "size": 4, "label": "red"}},
        "2": {"class_type": "TScale", "inputs": {"data": ["1", 0], "factor": 2.0}},
        "3": {"class_type": "TSave", "inputs": {"data": ["2", 0], "filename_prefix": "out"}},
        "4": {"class_type": "TConst", "inputs": {"value": 5}},
        "5": {"class_type": "TAny", "inputs": {"value": ["4", 0]}},
    }


@pytest.fixture
def executor():
    return Executor(make_registry())


def test_runs_outputs_in_dependency_order_with_hooks(executor, isolated_io):
    hooks = Recorder()
    result = executor.execute(
        chain(), prompt_id="p1", extra_data={"extra_pnginfo": {"workflow": {"id": "w"}}}, hooks=hooks
    )
    assert result.status == "success" and result.error is None
    assert result.executed == ["1", "2", "3", "4", "5"]
    assert hooks.events[:2] == [("start",), ("cached", ())]
    assert hooks.events[2:5] == [("node_start", "1"), ("node_finished", "1"), ("node_start", "2")]
    assert ("executed", "3") in hooks.events and hooks.events[-1] == ("success",)
    assert hooks.events.index(("node_finished", "3")) < hooks.events.index(("executed", "3"))
    saved = json.loads((isolated_io["output"] / "out_3.json").read_text())
    assert saved == {
        "data": {"seed": 1, "size": 4, "label": "red", "factor": 2.0, "note": ""},
        "has_workflow": True,
        "id": "3",
    }
    assert result.outputs["3"] == {"images": [{"filename": "out_3.json", "subfolder": "", "type": "output"}]}
    assert json.loads(result.outputs["5"]["text"][0]) == 5


def test_rerun_hits_the_cache_and_resends_ui(executor):
    executor.execute(chain())
    before = dict(CALLS)
    hooks = Recorder()
    result = executor.execute(chain(), hooks=hooks)
    assert dict(CALLS) == before  # nothing recomputed
    assert hooks.events[1] == ("cached", ("1", "2", "3", "4", "5"))
    assert ("executed", "3") in hooks.events and ("executed", "5") in hooks.events
    assert "node_start" not in hooks.kinds()
    assert set(result.outputs) == {"3", "5"} and result.status == "success"


def test_only_seed_change_recomputes_its_dependants(executor):
    executor.execute(chain(seed=1))
    CALLS.clear()
    hooks = Recorder()
    executor.execute(chain(seed=2), hooks=hooks)
    assert dict(CALLS) == {"TSource": 1, "TScale": 1, "TSave": 1}
    assert hooks.events[1] == ("cached", ("4", "5"))


def test_nan_is_changed_always_reruns(executor):
    prompt = {
        "1": {"class_type": "TSource", "inputs": {"seed": 1, "size": 4, "label": "red"}},
        "2": {"class_type": "TAlways", "inputs": {"data": ["1", 0]}},
        "3": {"class_type": "TAny", "inputs": {"value": ["2", 0]}},
    }
    executor.execute(prompt)
    executor.execute(prompt)
    assert CALLS["TAlways"] == 2 and CALLS["TSource"] == 1


def test_targets_run_only_that_branch(executor):
    result = executor.execute(chain(), targets=["5"])
    assert result.executed == ["4", "5"] and "TSource" not in CALLS


def test_progress_reaches_hooks(executor):
    prompt = {
        "1": {"class_type": "TSource", "inputs": {"seed": 1, "size": 4, "label": "red"}},
        "2": {"class_type": "TLoop", "inputs": {"data": ["1", 0], "steps": 3}},
        "3": {"class_type": "TAny", "inputs": {"value": ["2", 0]}},
    }
    hooks = Recorder()
    executor.execute(prompt, hooks=hooks)
    assert [e for e in hooks.events if e[0] == "progress"] == [("progress", "2", i, 3) for i in (1, 2, 3)]


def test_interrupt_from_another_thread(executor):
    prompt = {
        "1": {"class_type": "TSource", "inputs": {"seed": 1, "size": 4, "label": "red"}},
        "2": {"class_type": "TLoop", "inputs": {"data": ["1", 0], "steps": 0}},
        "3": {"class_type": "TAny", "inputs": {"value": ["2", 0]}},
    }
    hooks = Recorder()

    def stop_when_looping():
        assert LOOP_STARTED.wait(10)
        executor.interrupt()

    stopper = threading.Thread(target=stop_when_looping)
    stopper.start()
    result = executor.execute(prompt, hooks=hooks)
    stopper.join()
    assert result.status == "interrupted"
    assert result.error["node_id"] == "2"
    assert hooks.events[-1] == ("interrupted", "2", "TLoop")
    assert "TAny" not in CALLS
    # the flag is reset: the next prompt runs, and the interrupted node is not cached
    prompt["2"]["inputs"]["steps"] = 2
    assert executor.execute(prompt).status == "success"


def test_node_error_keeps_earlier_outputs_and_stops(executor, isolated_io):
    prompt = {
        "1": {"class_type": "TSource", "inputs": {"seed": 1, "size": 4, "label": "red"}},
        "2": {"class_type": "TSave", "inputs": {"data": ["1", 0], "filename_prefix": "kept"}},
        "3": {"class_type": "TFail", "inputs": {"data": ["1", 0], "kind": "runtime"}},
        "4": {"class_type": "TAny", "inputs": {"value": ["3", 0]}},
    }
    hooks = Recorder()
    result = executor.execute(prompt, hooks=hooks)
    assert result.status == "error"
    assert (isolated_io["output"] / "kept_2.json").is_file()
    assert result.outputs == {"2": {"images": [{"filename": "kept_2.json", "subfolder": "", "type": "output"}]}}
    assert result.error["node_id"] == "3" and result.error["node_type"] == "TFail"
    assert result.error["exception_message"] == "boom"
    assert result.error["exception_type"] == "builtins.RuntimeError"
    assert any("RuntimeError: boom" in line for line in result.error["traceback"])
    assert hooks.events[-1] == ("error", "3", "TFail", "boom", ("1", "2"))
    assert "TAny" not in CALLS
    # the failed node is not cached; the good ones are
    CALLS.clear()
    prompt["3"]["inputs"]["kind"] = "runtime"
    executor.execute(prompt)
    assert dict(CALLS) == {"TFail": 1}


def test_node_input_error_gets_the_node_id(executor):
    prompt = {
        "1": {"class_type": "TSource", "inputs": {"seed": 1, "size": 4, "label": "red"}},
        "7": {"class_type": "TFail", "inputs": {"data": ["1", 0], "kind": "input"}},
        "8": {"class_type": "TAny", "inputs": {"value": ["7", 0]}},
    }
    result = executor.execute(prompt)
    assert result.error["exception_message"] == ("Node 7 (TFail): TFail: input 'kind': something this node cannot do")


def test_invalid_prompt_is_not_run(executor):
    hooks = Recorder()
    prompt = chain()
    prompt["1"]["inputs"]["size"] = 0
    prompt["4"]["inputs"]["value"] = -3
    result = executor.execute(prompt, hooks=hooks)
    assert result.status == "error" and hooks.events == []
    assert result.error["type"] == "prompt_outputs_failed_validation"
    assert result.error["node_errors"]["1"]["errors"][0]["type"] == "value_smaller_than_min"
    assert CALLS == {}


def test_partly_invalid_prompt_runs_only_valid_outputs(executor):
    prompt = chain()
    prompt["1"]["inputs"]["size"] = 0  # breaks the Source -> Scale -> Save branch only
    result = executor.execute(prompt)
    assert result.status == "success" and result.executed == ["4", "5"]
    assert set(CALLS) == {"TConst", "TAny"}


def test_validate_returns_coerced_prompt(executor):
    result = executor.validate(
        {
            "1": {"class_type": "TConst", "inputs": {"value": "3"}},
            "2": {"class_type": "TAny", "inputs": {"value": ["1", 0]}},
        }
    )
    assert result.ok and result.outputs == ["2"] and result.prompt["1"]["inputs"]["value"] == 3


class TList:
    """Returns a list output (OUTPUT_IS_LIST) to check per-item calls downstream."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"count": ("INT", {"default": 3})}}

    RETURN_TYPES = ("INT",)
    OUTPUT_IS_LIST = (True,)
    FUNCTION = "run"

    def run(self, count):
        return (list(range(count)),)


class TDouble:
    """Doubles one integer per call."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("INT", {"forceInput": True})}}

    RETURN_TYPES = ("INT",)
    FUNCTION = "run"

    def run(self, value):
        return {"result": (value * 2,), "ui": {"text": [str(value * 2)]}}


class TGather:
    """INPUT_IS_LIST: receives the whole list at once."""

    INPUT_IS_LIST = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"values": ("INT", {"forceInput": True})}}

    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "run"

    def run(self, values):
        return {"ui": {"text": [json.dumps(values)]}}


def test_list_outputs_run_per_item():
    from framefold.host.registry import NodeRegistry

    registry = NodeRegistry({"TList": TList, "TDouble": TDouble, "TGather": TGather})
    prompt = {
        "1": {"class_type": "TList", "inputs": {"count": 3}},
        "2": {"class_type": "TDouble", "inputs": {"value": ["1", 0]}},
        "3": {"class_type": "TGather", "inputs": {"values": ["2", 0]}},
    }
    result = Executor(registry).execute(prompt)
    assert result.status == "success"
    assert result.outputs["2"] == {"text": ["0", "2", "4"]}
    assert json.loads(result.outputs["3"]["text"][0]) == [0, 2, 4]


def test_undeclared_inputs_are_not_passed(executor):
    prompt = chain()
    prompt["4"]["inputs"]["stale_widget"] = 3  # e.g. left over from an older version of the node
    assert executor.execute(prompt).status == "success"
