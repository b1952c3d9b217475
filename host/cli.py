"""The ``framefold`` command: run workflows headless, list nodes and models, convert files, serve the canvas.

Exit codes of ``framefold run``: 0 every workflow ran, 2 a workflow or an argument is invalid (the
problems are printed, nothing was computed for it), 1 a workflow failed or was interrupted while running.
Every failure prints one message; ``--debug`` adds the traceback.

Ctrl-C during a run asks the running node to stop at its next check (a decode saves the sampled
latents and the message says where); a second Ctrl-C aborts at once.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import random
import signal
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

from ..nodes import _folders
from ..pipelines.video.io import set_deterministic_encoding
from ..pipelines.video.naming import clean_stale_temp_files
from .registry import NodeRegistry, combo_choices, has_control_after_generate, input_options, input_type_name
from .workflow import WorkflowError, convert_file, load_workflow
from .workflow_input import parse_json_text

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
SCALAR_KINDS = ("INT", "FLOAT", "BOOLEAN")


def _parse_value(text: str) -> Any:
    """A command-line value for an input of unknown type: strict JSON when it parses, else the plain string."""
    try:
        return parse_json_text(text, "value")
    except WorkflowError:
        return text


def typed_value(text: str, spec: Any) -> "tuple[Any, str | None]":
    """``(value, None)`` or ``(None, reason)``: a command-line text read as the type of the input ``spec``.

    STRING takes the text verbatim; INT/FLOAT/BOOLEAN parse it and must be a single value of that type
    (``[1,2]`` is refused, never taken for a link); a COMBO takes the text if it is a choice, else its
    JSON value if that is one. Inputs fed by links (MODEL, LATENT, ...) cannot be set.
    """
    from .validate import coerce_literal

    kind = input_type_name(spec)
    if kind == "STRING":
        return text, None
    if kind in SCALAR_KINDS:
        value = _parse_value(text)
        if isinstance(value, (list, dict)):
            return None, f"{kind} input: expected a single value, got {text}"
        return coerce_literal(value, spec)
    if kind == "COMBO":
        choices = combo_choices(spec)
        parsed = _parse_value(text)
        return (text if text in choices or parsed not in choices else parsed), None
    return None, f"the input takes a link from a node's {kind} output; --set sets widget values only"


def _parse_assignment(text, flag):
    """``NODE_ID.INPUT=VALUE`` -> ``(node_id, input_name, raw_value)``."""
    target, sep, value = text.partition("=")
    node_id, dot, name = target.rpartition(".")
    if not sep or not dot or not node_id or not name:
        raise WorkflowError(f"{flag} {text!r}: expected NODE_ID.INPUT=VALUE (for example 3.seed=42)")
    return node_id, name, value


def apply_overrides(prompt: dict, assignments: dict, registry: NodeRegistry) -> dict:
    """Set ``{(node_id, input): text}`` values in an API prompt, each read as its input's type
    (:func:`typed_value`); unknown nodes/inputs and values of the wrong type are errors."""
    problems = []
    for (node_id, name), text in assignments.items():
        node = prompt.get(node_id)
        if node is None:
            problems.append(
                f"--set {node_id}.{name}: there is no node {node_id} in the workflow "
                f"(nodes: {', '.join(sorted(prompt))})"
            )
            continue
        class_type = node.get("class_type")
        if class_type in registry:
            types = registry.input_types(class_type)
            if name not in types["required"] and name not in types["optional"]:
                known = ", ".join(list(types["required"]) + list(types["optional"]))
                problems.append(f"--set {node_id}.{name}: {class_type} has no input '{name}' (inputs: {known})")
                continue
            spec = types["required"].get(name, types["optional"].get(name))
            value, reason = typed_value(text, spec)
            if reason:
                problems.append(f"--set {node_id}.{name}={text}: node {node_id} ({class_type}): {reason}")
                continue
        else:
            value = _parse_value(text)
            value = {"__value__": value} if isinstance(value, list) else value
        node.setdefault("inputs", {})[name] = value
    if problems:
        raise WorkflowError(problems)
    return prompt


def reseed(prompt: dict, registry: NodeRegistry, rng: random.Random) -> dict:
    """Give every literal seed-like INT input (one the canvas puts a control_after_generate on) a new value.

    Returns ``{(node_id, input): new_value}`` so the caller can print what was chosen.
    """
    chosen = {}
    for node_id, node in prompt.items():
        class_type = node.get("class_type")
        if class_type not in registry:
            continue
        for name, spec, _ in registry.ordered_inputs(class_type):
            value = node.get("inputs", {}).get(name)
            if value is None or isinstance(value, list) or input_type_name(spec) != "INT":
                continue
            if not has_control_after_generate(name, spec):
                continue
            options = input_options(spec)
            low = int(options.get("min", 0))
            high = int(min(options.get("max", 2**53 - 1), 2**53 - 1))
            node["inputs"][name] = chosen[(node_id, name)] = rng.randint(low, high)
    return chosen


def _workflow_files(paths):
    """Workflow files to run: files as given, folders expanded to their ``*.json`` files (sorted)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.glob("*.json") if p.is_file())
            if not found:
                raise WorkflowError(f"folder {path} contains no .json workflow")
            files += found
        else:
            files.append(path)
    return files


def _variants(sets, sweeps):
    """Every combination of sweep values, each merged over the fixed ``--set`` values."""
    fixed = {}
    for text in sets:
        node_id, name, value = _parse_assignment(text, "--set")
        fixed[(node_id, name)] = value
    axes = []
    for text in sweeps:
        node_id, name, values = _parse_assignment(text, "--sweep")
        axes.append([((node_id, name), v) for v in values.split(",")])
    variants = []
    for combo in itertools.product(*axes):
        merged = dict(fixed)
        merged.update(dict(combo))
        label = ", ".join(f"{n}.{i}={v}" for (n, i), v in combo)
        variants.append((label, merged))
    return variants


def written_files(outputs: dict) -> list:
    """Paths of the files named in the ui dicts of a run (``filename``/``subfolder``/``type`` items)."""
    paths = []
    for ui in outputs.values():
        for items in ui.values():
            for item in items if isinstance(items, (list, tuple)) else []:
                if isinstance(item, dict) and "filename" in item:
                    base = _folders.io_dir(item.get("type") or "output")
                    path = base / (item.get("subfolder") or "") / item["filename"]
                    if path not in paths:
                        paths.append(path)
    return paths


def _progress_hooks(registry, prompt, enabled):
    """Execution hooks that draw a tqdm bar per node on stderr and print errors."""
    from tqdm import tqdm

    from .executor import ExecutionHooks

    class TerminalHooks(ExecutionHooks):
        """Terminal rendering of execution events."""

        def __init__(self):
            self.bar = None

        def _label(self, node_id):
            class_type = prompt[node_id]["class_type"]
            return f"#{node_id} {registry.display_name(class_type)}"

        def execution_cached(self, prompt_id, node_ids):
            """Say which nodes come from the cache."""
            if node_ids and enabled:
                print(f"  cached: {', '.join(node_ids)}", file=sys.stderr)

        def node_start(self, prompt_id, node_id):
            """Open a bar for the node."""
            if enabled:
                self.bar = tqdm(total=1, desc=self._label(node_id), file=sys.stderr, leave=True)

        def node_progress(self, prompt_id, node_id, value, max_value, preview):
            """Advance the node's bar."""
            if self.bar is not None:
                if self.bar.total != max_value:
                    self.bar.total = max_value
                    self.bar.refresh()
                self.bar.update(value - self.bar.n)  # tqdm rate-limits the redraws

        def node_finished(self, prompt_id, node_id):
            """Complete and close the node's bar."""
            if self.bar is not None:
                self.bar.n = self.bar.total
                self.bar.close()
                self.bar = None

        def node_executed(self, prompt_id, node_id, ui):
            """Print the warnings a node returned in ``ui["warnings"]`` (e.g. Text Encode's prompt feedback)."""
            for warning in (ui or {}).get("warnings", []):
                print(f"{self._label(node_id)}: warning: {warning}", file=sys.stderr)

        def execution_error(self, prompt_id, node_id, node_type, exception, traceback_lines, executed):
            """Close the bar (the caller prints the error)."""
            self.node_finished(prompt_id, node_id)

        def execution_interrupted(self, prompt_id, node_id, node_type, executed):
            """Close the bar (the caller reports the interrupt)."""
            self.node_finished(prompt_id, node_id)

    return TerminalHooks()


def _failure_message(name: str, result: Any) -> str:
    """One line (or a few) saying why a run failed, interrupted or errored, without a traceback."""
    err = result.error or {}
    message = str(err.get("exception_message") or err.get("message") or "failed")
    if result.status == "interrupted":
        return f"{name}: interrupted at node {err.get('node_id')} ({err.get('node_type')}): {message}"
    if "node_id" not in err:
        details = err.get("details")
        return f"{name}: {message}" + (f": {details}" if details and details not in message else "")
    if message.lower().startswith(f"node {str(err['node_id']).lower()} "):
        return f"{name}: {message}"
    return f"{name}: node {err['node_id']} ({err['node_type']}) failed: {message}"


class RunOptions:
    """What ``framefold run`` does with each workflow: progress bars, re-seeding, validation only, tracebacks."""

    def __init__(
        self,
        show_progress: bool = True,
        rng: "random.Random | None" = None,
        check_only: bool = False,
        debug: bool = False,
    ) -> None:
        self.show_progress = show_progress
        self.rng = rng
        self.check_only = check_only
        self.debug = debug
        self.stop_requested = lambda: False


def _run_one(executor: Any, path: Path, variants: list, options: RunOptions) -> int:
    """Run (or with ``check_only`` only validate) one workflow file, every variant; returns its exit code."""
    from .validate import format_validation

    registry = executor.registry
    try:
        base_prompt, ui_graph = load_workflow(path, registry)
    except WorkflowError as exc:
        print(f"{path}: invalid workflow\n{exc}", file=sys.stderr)
        return EXIT_INVALID
    extra_data = {"extra_pnginfo": {"workflow": ui_graph}} if ui_graph is not None else {}
    code = EXIT_OK
    for label, assignments in variants:
        if options.stop_requested():
            break
        name = f"{path}" + (f" [{label}]" if label else "")
        prompt = json.loads(json.dumps(base_prompt))
        if options.rng is not None:
            for (node_id, input_name), value in reseed(prompt, registry, options.rng).items():
                if (node_id, input_name) not in assignments:
                    print(f"{name}: node {node_id} input '{input_name}' re-seeded to {value}", file=sys.stderr)
        try:
            apply_overrides(prompt, assignments, registry)
        except WorkflowError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return EXIT_INVALID
        checked = executor.validate(prompt)
        if not checked.ok or checked.node_errors:
            print(f"{name}: invalid workflow\n{format_validation(checked)}", file=sys.stderr)
            return EXIT_INVALID
        if options.check_only:
            print(f"{name}: valid", file=sys.stderr)
            continue
        if options.stop_requested():  # Ctrl-C while loading or validating: do not start
            break
        print(f"running {name}", file=sys.stderr)
        hooks = _progress_hooks(registry, checked.prompt, options.show_progress)
        result = executor.execute(prompt, extra_data=extra_data, hooks=hooks)
        for file_path in written_files(result.outputs):
            print(f"wrote {file_path}")
        if result.status != "success":
            print(_failure_message(name, result), file=sys.stderr)
            if options.debug and result.error and result.error.get("traceback"):
                print("".join(result.error["traceback"]), file=sys.stderr)
            code = EXIT_FAILED
    return code


def prepare_output_dir(folder: "str | Path") -> "str | None":
    """Create the output folder, check that files can be created in it, remove temp files of killed runs.

    Returns a problem text, or None when the folder is usable.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".framefold-write-check-"):
            pass
    except OSError as exc:
        return f"output folder {folder}: not writable ({exc.strerror or exc})"
    for stale in clean_stale_temp_files(folder):
        print(f"removed a temp file left by a killed run: {stale}", file=sys.stderr)
    return None


class _CtrlC:
    """First Ctrl-C: ask the executor to interrupt (the node stops cleanly, keeping what it can); second: abort."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor
        self.pressed = False
        self.previous: Any = None

    def __enter__(self) -> "_CtrlC":
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            self.previous = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.pressed:
            raise KeyboardInterrupt
        self.pressed = True
        print("\ninterrupting: the running node stops at its next check (Ctrl-C again to abort)", file=sys.stderr)
        self.executor.interrupt()


def cmd_run(args: argparse.Namespace, registry: NodeRegistry) -> int:
    """``framefold run``: run workflow files or folders of them."""
    from .executor import Executor

    chosen = {"output": args.output_dir, "input": args.input_dir}
    _folders.set_io_dirs(**{k: v for k, v in chosen.items() if v is not None})
    set_deterministic_encoding(args.deterministic)
    try:
        files = _workflow_files(args.workflows)
        variants = _variants(args.set or [], args.sweep or [])
    except WorkflowError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    if not args.check:
        problem = prepare_output_dir(_folders.io_dir("output", create=False))
        if problem:
            print(problem, file=sys.stderr)
            return EXIT_INVALID
    executor = Executor(registry)
    rng = random.Random(args.reseed_with) if args.reseed or args.reseed_with is not None else None
    options = RunOptions(not args.quiet, rng, args.check, args.debug)
    codes = []
    with _CtrlC(executor) as ctrl_c:
        options.stop_requested = lambda: ctrl_c.pressed
        try:
            for path in files:
                codes.append(_run_one(executor, path, variants, options))
                if ctrl_c.pressed:
                    break
        except KeyboardInterrupt:
            print("aborted", file=sys.stderr)
            return EXIT_FAILED
    if EXIT_INVALID in codes:
        return EXIT_INVALID
    return EXIT_FAILED if EXIT_FAILED in codes or ctrl_c.pressed else EXIT_OK


def cmd_nodes(args: argparse.Namespace, registry: NodeRegistry) -> int:
    """``framefold nodes``: list node classes, or print the full object_info JSON."""
    if args.json:
        print(json.dumps(registry.object_info(), indent=1))
        return EXIT_OK
    for name in registry.names():
        info = registry.node_info(name)
        marker = " [output]" if info["output_node"] else ""
        print(f"{name:40s} {info['display_name']}  ({info['category']}){marker}")
    return EXIT_OK


def cmd_models(args: argparse.Namespace, registry: NodeRegistry) -> int:
    """``framefold models``: per model kind, the folders searched and the files found."""
    for kind in _folders.MODEL_KINDS:
        print(f"{kind}:")
        for folder in _folders.model_search_dirs(kind):
            print(f"  folder {folder}" + ("" if folder.is_dir() else "  (missing)"))
        files = _folders.list_models(kind)
        for name in files:
            print(f"    {name}")
        if not files:
            print("    (no files)")
    return EXIT_OK


def cmd_convert(args: argparse.Namespace, registry: NodeRegistry) -> int:
    """``framefold convert IN OUT --to ui|api``."""
    try:
        out = convert_file(args.source, args.destination, args.to, registry)
    except WorkflowError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    print(f"wrote {out}")
    return EXIT_OK


def cmd_serve(args: argparse.Namespace, registry: NodeRegistry) -> int:
    """``framefold serve``: the embedded ComfyUI-compatible host (framefold.host.server)."""
    from . import server

    server.serve(
        listen=args.listen,
        port=args.port,
        open_browser=args.open,
        max_upload_mb=args.max_upload_mb,
        output_dir=args.output_dir,
        input_dir=args.input_dir,
        user_dir=args.user_dir,
        temp_dir=args.temp_dir,
        allowed_hosts=tuple(args.allow_host),
    )
    return EXIT_OK


@functools.lru_cache(maxsize=1)
def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``framefold`` command."""
    parser = argparse.ArgumentParser(prog="framefold", description="FrameFold video diffusion: run, serve, inspect.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="print tracebacks of failures")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", parents=[common], help="run workflow JSON files (UI or API format) or folders of them")
    run.add_argument("workflows", nargs="+", help="workflow .json files or folders")
    run.add_argument(
        "--set",
        action="append",
        metavar="NODE_ID.INPUT=VALUE",
        help="override an input (value parsed as JSON when possible); repeatable",
    )
    run.add_argument(
        "--sweep",
        action="append",
        metavar="NODE_ID.INPUT=V1,V2,...",
        help="run once per value (several sweeps run every combination)",
    )
    run.add_argument("--output-dir", default=None, help="where output files go (default ./output)")
    run.add_argument("--input-dir", default=None, help="where input files are read (default ./input)")
    run.add_argument(
        "--reseed",
        action="store_true",
        help="give every seed input (an INT with control_after_generate) a random value per run; "
        "--set/--sweep values still win. Default: the seeds stored in the file",
    )
    run.add_argument(
        "--reseed-with",
        type=int,
        default=None,
        metavar="N",
        help="like --reseed, with the random seeds drawn reproducibly from N",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--check", action="store_true", help="validate only (exit 0 valid, 2 invalid); nothing runs")
    run.add_argument(
        "--no-deterministic",
        dest="deterministic",
        action="store_false",
        help="encode videos multi-threaded (faster; the bytes then differ run to run). Default: deterministic "
        "single-threaded encoding, so the same workflow reproduces its file byte for byte",
    )
    run.add_argument(
        "--device",
        default=None,
        metavar="DEVICE",
        help="compute device: cpu, cuda, cuda:<index> or mps (default: $FRAMEFOLD_DEVICE, else CUDA, MPS, CPU)",
    )
    run.set_defaults(func=cmd_run)

    nodes = sub.add_parser("nodes", parents=[common], help="list node classes")
    nodes.add_argument("--json", action="store_true", help="print the /object_info JSON")
    nodes.set_defaults(func=cmd_nodes)

    models = sub.add_parser("models", parents=[common], help="list model folders and files per kind")
    models.set_defaults(func=cmd_models)

    convert = sub.add_parser("convert", parents=[common], help="convert a workflow between UI and API formats")
    convert.add_argument("source")
    convert.add_argument("destination")
    convert.add_argument("--to", choices=("ui", "api"), required=True)
    convert.set_defaults(func=cmd_convert)

    serve = sub.add_parser("serve", parents=[common], help="serve the ComfyUI canvas with FrameFold's nodes")
    serve.add_argument("--listen", default="127.0.0.1", help="address to bind (default loopback only)")
    serve.add_argument("--port", type=int, default=8188)
    serve.add_argument("--open", action="store_true", help="open the browser")
    serve.add_argument("--max-upload-mb", type=float, default=100)
    serve.add_argument("--output-dir", default=None)
    serve.add_argument("--input-dir", default=None)
    serve.add_argument("--user-dir", default=None)
    serve.add_argument("--temp-dir", default=None)
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        help="extra Host header name to accept (repeatable); others get 403 (DNS-rebinding guard)",
    )
    serve.add_argument(
        "--device",
        default=None,
        metavar="DEVICE",
        help="compute device: cpu, cuda, cuda:<index> or mps (default: $FRAMEFOLD_DEVICE, else CUDA, MPS, CPU)",
    )
    serve.set_defaults(func=cmd_serve)

    from .batch import add_batch_parser

    add_batch_parser(sub)
    return parser


def main(argv: "list[str] | None" = None, *, registry: "NodeRegistry | None" = None) -> int:
    """Entry point of the ``framefold`` console script; returns the exit code.

    An unexpected error prints one line (the traceback with ``--debug``) and exits 1.
    """
    args = build_parser().parse_args(argv)
    if getattr(args, "device", None) is not None:
        from ..pipelines.device import DeviceError, set_device_override

        try:
            set_device_override(args.device)
        except DeviceError as exc:
            print(f"--device: {exc}", file=sys.stderr)
            return EXIT_INVALID
    try:
        if registry is None:
            from .registry import default_registry

            registry = default_registry()
        return args.func(args, registry)
    except KeyboardInterrupt:
        print("aborted", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        print(
            f"framefold {args.command}: {type(exc).__name__}: {exc}"
            + ("" if args.debug else " (--debug for the traceback)"),
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
