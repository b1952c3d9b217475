"""Property-based fuzzing of every workflow loader: any bytes give a workflow or a clear error, never a traceback.

Cases are the example workflows (both formats) mutated by hypothesis (seeded): subtrees replaced by
random JSON, keys dropped, types swapped, values nested deeply, bytes flipped or truncated, texts
re-encoded, plus hand-made hostile shapes (long reroute chains, exploding subgraphs). Each case goes
through ``framefold run --check`` in-process (exit 0 or 2, a message for 2, nothing raised) and every
invalid case is then posted to a live canvas host, which must answer 400 in ComfyUI's error shape.
"""

import contextlib
import copy
import io
import json
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from test_server_support import make_server

from framefold.host import cli
from framefold.host.registry import default_registry
from framefold.host.validate import validate_prompt
from framefold.host.workflow import load_workflow
from framefold.host.workflow_input import MAX_JSON_DEPTH, MAX_NODES

EXAMPLES = Path(__file__).resolve().parent.parent / "example_workflows"
CASES_PER_FORMAT = 1000
# A hang detector, in CPU seconds of this process (wall time on a shared machine measures the neighbours):
# every case here is small and must finish far below this.
SLOWEST_ALLOWED_S = 2.0

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([10**400, -(10**400), 2**63, 2**53 + 1]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["²", "-10", "-20", "Reroute", "PrimitiveNode", "__passthrough__", "seed", "", "0", "1e999"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def registry():
    return default_registry()


@pytest.fixture(scope="module")
def bases(registry):
    """The example workflows as parsed UI graphs and as API prompts."""
    ui, api = [], []
    for path in sorted(EXAMPLES.glob("*.json")):
        prompt, graph = load_workflow(path, registry)
        ui.append(graph)
        api.append(prompt)
    return {"ui": ui, "api": api}


def _containers(tree):
    """Every (container, key) pair of a JSON tree, in a stable order."""
    found, stack = [], [tree]
    while stack:
        node = stack.pop()
        keys = list(node) if isinstance(node, dict) else range(len(node)) if isinstance(node, list) else []
        for key in keys:
            found.append((node, key))
            stack.append(node[key])
    return found


def _mutate(data, draw):
    """Apply 1-4 random structural mutations in place to a copy of ``data``; returns the copy."""
    tree = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 4))):
        spots = _containers(tree)
        if not spots:
            return draw(json_values)
        parent, key = spots[draw(st.integers(0, len(spots) - 1))]
        action = draw(st.sampled_from(["replace", "delete", "swap_type", "nest", "duplicate", "stringify"]))
        value = parent[key]
        if action == "replace":
            parent[key] = draw(json_values)
        elif action == "delete":
            del parent[key]
        elif action == "swap_type":
            parent[key] = {"a": value} if not isinstance(value, dict) else [value]
        elif action == "nest":
            for _ in range(draw(st.sampled_from([2, MAX_JSON_DEPTH - 5, MAX_JSON_DEPTH + 1, 400]))):
                value = [value]
            parent[key] = value
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(value))
        else:
            parent[key] = json.dumps(value)
    return tree


@st.composite
def case_bytes(draw, documents):
    """Bytes of one fuzz case built from one of ``documents``."""
    data = _mutate(documents[draw(st.integers(0, len(documents) - 1))], draw)
    text = json.dumps(data)
    form = draw(st.sampled_from(["json", "json", "json", "flip", "truncate", "utf16", "nan", "binary"]))
    raw = text.encode("utf-8")
    if form == "flip" and raw:
        position = draw(st.integers(0, len(raw) - 1))
        raw = raw[:position] + bytes([draw(st.integers(0, 255))]) + raw[position + 1 :]
    elif form == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif form == "utf16":
        raw = text.encode("utf-16")
    elif form == "nan":
        raw = text.replace("0", "NaN", 1).replace("1", "Infinity", 1).encode()
    elif form == "binary":
        raw = draw(st.binary(max_size=64)) + raw[:64]
    return raw


def _reroute_chain(length):
    """A UI graph whose only real node reads its input through ``length`` chained Reroutes."""
    nodes = [
        {"id": i, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": i}], "outputs": []}
        for i in range(1, length + 1)
    ]
    links = [[i + 1, i, 0, i + 1, 0, "*"] for i in range(1, length)]
    return {"nodes": nodes, "links": links}


def _exploding_subgraphs(levels, fan_out):
    """Subgraph i holds ``fan_out`` instances of subgraph i+1: fan_out**levels nodes once expanded."""
    subgraphs = []
    for level in range(levels):
        inner = f"sg{level + 1}" if level + 1 < levels else "Note"
        nodes = [{"id": k, "type": inner} for k in range(fan_out)]
        subgraphs.append({"id": f"sg{level}", "nodes": nodes, "links": [], "inputs": [], "outputs": []})
    return {"nodes": [{"id": 1, "type": "sg0"}], "links": [], "definitions": {"subgraphs": subgraphs}}


HOSTILE = [
    _reroute_chain(1500),
    _reroute_chain(MAX_NODES + 5),
    _exploding_subgraphs(12, 8),
    _exploding_subgraphs(40, 1),
    {
        "nodes": [{"id": 1, "type": "sg"}],
        "definitions": {"subgraphs": [{"id": "sg", "nodes": [{"id": 2, "type": "sg"}]}]},
    },
    {"nodes": [{"id": "²", "type": "FrameFoldSaveVideo"}]},
    {"²": {"class_type": "FrameFoldSaveVideo", "inputs": {}}},
    {"1": {"class_type": ["unhashable"], "inputs": {}}},
    {"1": {"class_type": "FrameFoldSaveVideo", "inputs": []}},
    {"nodes": "not a list"},
    {"nodes": [1, 2, 3]},
    [[[[]]]],
]


class Outcome:
    """What the loaders did with the cases: the invalid ones (to post to the server) and the slowest time."""

    def __init__(self):
        self.invalid_bodies = []
        self.counts = {0: 0, 2: 0}
        self.slowest = 0.0


def _check_case(raw, tmp_dir, registry, outcome, index):
    """Run ``framefold run --check`` on the bytes; record the outcome."""
    path = tmp_dir / f"case_{index % 8}.json"
    path.write_bytes(raw)
    err = io.StringIO()
    start = time.process_time()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["run", "--check", "--quiet", str(path)], registry=registry)
    outcome.slowest = max(outcome.slowest, time.process_time() - start)
    message = err.getvalue()
    assert code in (0, 2), (code, message, raw[:300])
    assert "Traceback" not in message and "framefold run:" not in message, message
    outcome.counts[code] += 1
    if code == 2:
        assert message.strip(), raw[:300]
        outcome.invalid_bodies.append(raw)


def test_fuzzed_workflows_give_a_workflow_or_a_clear_error(tmp_path, registry, bases):
    outcome = Outcome()
    counter = iter(range(10**9))
    for kind in ("ui", "api"):

        @seed(2026 if kind == "ui" else 2027)
        @settings(
            max_examples=CASES_PER_FORMAT,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(raw=case_bytes(bases[kind]))
        def run(raw):
            _check_case(raw, tmp_path, registry, outcome, next(counter))

        run()
    for graph in HOSTILE:
        _check_case(json.dumps(graph).encode(), tmp_path, registry, outcome, next(counter))
    total = outcome.counts[0] + outcome.counts[2]
    print(
        f"\nfuzz: {total} cases, {outcome.counts[2]} invalid (exit 2), {outcome.counts[0]} valid, slowest {outcome.slowest:.3f} CPU s"
    )
    assert total >= 2 * CASES_PER_FORMAT
    assert outcome.counts[2] > total // 2  # the mutations mostly break the workflow: the errors were exercised
    assert outcome.slowest < SLOWEST_ALLOWED_S

    server = make_server(tmp_path / "server", registry=registry)
    partial = 0
    try:
        for raw in outcome.invalid_bodies:
            try:
                prompt = json.loads(raw)
                body = json.dumps({"prompt": prompt}).encode()
            except ValueError:
                body = raw
            else:
                if isinstance(prompt, dict) and validate_prompt(prompt, registry).ok:
                    # Some outputs survive validation: like ComfyUI, the server would queue those (200 with
                    # node_errors) where the CLI refuses the whole file; not posted, so nothing runs here.
                    partial += 1
                    continue
            status, _, answer = server.request(
                "POST", "/api/prompt", body=body, headers={"Content-Type": "application/json"}
            )
            assert status == 400, (status, answer[:300], body[:300])
            error = json.loads(answer)
            assert set(error) == {"error", "node_errors"} and error["error"]["type"], error
        print(f"server: {len(outcome.invalid_bodies) - partial} invalid cases answered 400, {partial} partially valid")
    finally:
        server.stop()


def _check(path, registry):
    """(exit code, stderr) of ``framefold run --check`` on ``path``."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["run", "--check", "--quiet", str(path)], registry=registry)
    return code, err.getvalue()


def test_media_files_that_hold_no_workflow_give_clear_errors(tmp_path, registry, bases):
    import numpy as np

    from framefold.pipelines.video.png import encode_png

    pixels = np.zeros((4, 4, 3), np.uint8)
    cases = {
        "noise.png": (bytes(range(256)) * 4, "not a readable PNG"),
        "truncated.png": (encode_png(pixels, {"workflow": json.dumps(bases["ui"][0])})[:40], "no embedded"),
        "badjson.png": (encode_png(pixels, {"workflow": "{not json"}), "the embedded 'workflow': not valid JSON"),
        "deep.png": (encode_png(pixels, {"prompt": "[" * 5000 + "]" * 5000}), "nested deeper than the limit"),
        "noise.mp4": (bytes(range(256)) * 4, "not a readable video"),
        "empty.webm": (b"", "not a readable video"),
        "utf16.json": (json.dumps(bases["api"][0]).encode("utf-16"), "valid"),
        "latin1.json": ('{"1": "\xe9"}'.encode("latin-1"), "not a JSON text"),
    }
    for name, (data, expected) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        code, err = _check(path, registry)
        assert expected in err and "Traceback" not in err, (name, err)
        assert code == (0 if expected == "valid" else 2), (name, err)
    good = tmp_path / "good.png"
    good.write_bytes(encode_png(pixels, {"workflow": json.dumps(bases["ui"][0])}))
    assert _check(good, registry) == (0, f"{good}: valid\n")


def test_a_bad_file_does_not_stop_a_folder_run(tmp_path, registry, bases):
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "a_broken.json").write_bytes(b"\xff\xfe\x00garbage")
    (folder / "b_nested.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "c_good.json").write_text(json.dumps(bases["ui"][0]))
    code, err = _check(folder, registry)
    assert code == 2
    assert "a_broken.json: not a JSON text" in err or "a_broken.json: not valid JSON" in err, err
    assert "b_nested.json: nested deeper than the limit of 64 levels" in err
    assert f"{folder / 'c_good.json'}: valid" in err


def test_a_png_text_chunk_that_inflates_without_bound_is_refused(tmp_path, registry):
    import struct
    import zlib

    import numpy as np

    from framefold.pipelines.video.png import MAX_TEXT_BYTES, encode_png

    bomb = zlib.compress(b"[" * (MAX_TEXT_BYTES + 1), 9)
    body = b"workflow\0\0" + bomb
    chunk = struct.pack(">I", len(body)) + b"zTXt" + body + struct.pack(">I", zlib.crc32(b"zTXt" + body))
    png = encode_png(np.zeros((2, 2, 3), np.uint8))
    path = tmp_path / "bomb.png"
    path.write_bytes(png[:33] + chunk + png[33:])
    code, err = _check(path, registry)
    assert code == 2 and f"expands to more than {MAX_TEXT_BYTES} bytes" in err, err
