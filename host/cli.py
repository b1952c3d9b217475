"""The ``framefold`` command: run workflows headless, list nodes and models, convert files, serve the canvas.

Exit codes of ``framefold run``: 0 every workflow ran, 2 a workflow is invalid (validation errors are
printed, nothing was computed for it), 1 a workflow failed or was interrupted while running.
"""

import argparse
import itertools
import json
import random
import sys
from pathlib import Path

from ..nodes import _folders
from .registry import has_control_after_generate, input_options, input_type_name
from .workflow import WorkflowError, convert_file, load_workflow

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def _parse_value(text):
    """A command-line value: JSON when it parses (numbers, true/false, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_assignment(text, flag):
    """``NODE_ID.INPUT=VALUE`` -> ``(node_id, input_name, raw_value)``."""
    target, sep, value = text.partition("=")
    node_id, dot, name = target.rpartition(".")
    if not sep or not dot or not node_id or not name:
        raise WorkflowError(f"{flag} {text!r}: expected NODE_ID.INPUT=VALUE (for example 3.seed=42)")
    return node_id, name, value


def apply_overrides(prompt, assignments, registry):
    """Set ``{(node_id, input): value}`` literals in an API prompt; unknown nodes/inputs are errors."""
    problems = []
    for (node_id, name), value in assignments.items():
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
        node.setdefault("inputs", {})[name] = value
    if problems:
        raise WorkflowError(problems)
    return prompt


def reseed(prompt, registry, rng):
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
        fixed[(node_id, name)] = _parse_value(value)
    axes = []
    for text in sweeps:
        node_id, name, values = _parse_assignment(text, "--sweep")
        axes.append([((node_id, name), _parse_value(v)) for v in values.split(",")])
    variants = []
    for combo in itertools.product(*axes):
        merged = dict(fixed)
        merged.update(dict(combo))
        label = ", ".join(f"{n}.{i}={v!r}" for (n, i), v in combo)
        variants.append((label, merged))
    return variants


def written_files(outputs):
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

        def execution_error(self, prompt_id, node_id, node_type, exception, traceback_lines, executed):
            """Close the bar (the caller prints the error)."""
            self.node_finished(prompt_id, node_id)

        def execution_interrupted(self, prompt_id, node_id, node_type, executed):
            """Close the bar (the caller reports the interrupt)."""
            self.node_finished(prompt_id, node_id)

    return TerminalHooks()


def _run_one(executor, path, variants, show_progress, rng=None):
    """Run one workflow file (every variant); returns its exit code. ``rng``: re-seed each variant."""
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
        name = f"{path}" + (f" [{label}]" if label else "")
        prompt = json.loads(json.dumps(base_prompt))
        if rng is not None:
            for (node_id, input_name), value in reseed(prompt, registry, rng).items():
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
        print(f"running {name}", file=sys.stderr)
        hooks = _progress_hooks(registry, checked.prompt, show_progress)
        result = executor.execute(prompt, extra_data=extra_data, hooks=hooks)
        for file_path in written_files(result.outputs):
            print(f"wrote {file_path}")
        if result.status == "interrupted":
            print(f"{name}: interrupted at node {result.error['node_id']}", file=sys.stderr)
            code = EXIT_FAILED
        elif result.status != "success":
            err = result.error
            if "node_id" in err:
                print(
                    f"{name}: node {err['node_id']} ({err['node_type']}) failed: {err['exception_message']}\n"
                    + "".join(err.get("traceback", [])[-6:]),
                    file=sys.stderr,
                )
            else:
                print(f"{name}: {err.get('message')}", file=sys.stderr)
            code = EXIT_FAILED
    return code


def cmd_run(args, registry):
    """``framefold run``: run workflow files or folders of them."""
    from .executor import Executor

    chosen = {"output": args.output_dir, "input": args.input_dir}
    _folders.set_io_dirs(**{k: v for k, v in chosen.items() if v is not None})
    try:
        files = _workflow_files(args.workflows)
        variants = _variants(args.set or [], args.sweep or [])
    except WorkflowError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    executor = Executor(registry)
    rng = random.Random(args.reseed_with) if args.reseed or args.reseed_with is not None else None
    codes = []
    try:
        for path in files:
            codes.append(_run_one(executor, path, variants, not args.quiet, rng))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_FAILED
    if EXIT_INVALID in codes:
        return EXIT_INVALID
    return EXIT_FAILED if EXIT_FAILED in codes else EXIT_OK


def cmd_nodes(args, registry):
    """``framefold nodes``: list node classes, or print the full object_info JSON."""
    if args.json:
        print(json.dumps(registry.object_info(), indent=1))
        return EXIT_OK
    for name in registry.names():
        info = registry.node_info(name)
        marker = " [output]" if info["output_node"] else ""
        print(f"{name:40s} {info['display_name']}  ({info['category']}){marker}")
    return EXIT_OK


def cmd_models(args, registry):
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


def cmd_convert(args, registry):
    """``framefold convert IN OUT --to ui|api``."""
    try:
        out = convert_file(args.source, args.destination, args.to, registry)
    except WorkflowError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_INVALID
    print(f"wrote {out}")
    return EXIT_OK


def cmd_serve(args, registry):
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


def build_parser():
    """The argument parser of the ``framefold`` command."""
    parser = argparse.ArgumentParser(prog="framefold", description="FrameFold video diffusion: run, serve, inspect.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run workflow JSON files (UI or API format) or folders of them")
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
    run.add_argument(
        "--device",
        default=None,
        metavar="DEVICE",
        help="compute device: cpu, cuda, cuda:<index> or mps (default: $FRAMEFOLD_DEVICE, else CUDA, MPS, CPU)",
    )
    run.set_defaults(func=cmd_run)

    nodes = sub.add_parser("nodes", help="list node classes")
    nodes.add_argument("--json", action="store_true", help="print the /object_info JSON")
    nodes.set_defaults(func=cmd_nodes)

    models = sub.add_parser("models", help="list model folders and files per kind")
    models.set_defaults(func=cmd_models)

    convert = sub.add_parser("convert", help="convert a workflow between UI and API formats")
    convert.add_argument("source")
    convert.add_argument("destination")
    convert.add_argument("--to", choices=("ui", "api"), required=True)
    convert.set_defaults(func=cmd_convert)

    serve = sub.add_parser("serve", help="serve the ComfyUI canvas with FrameFold's nodes")
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
    return parser


def main(argv=None, *, registry=None):
    """Entry point of the ``framefold`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    if getattr(args, "device", None) is not None:
        from ..pipelines.device import DeviceError, set_device_override

        try:
            set_device_override(args.device)
        except DeviceError as exc:
            print(f"--device: {exc}", file=sys.stderr)
            return EXIT_INVALID
    if registry is None:
        from .registry import default_registry

        registry = default_registry()
    return args.func(args, registry)


if __name__ == "__main__":
    sys.exit(main())
