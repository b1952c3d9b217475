"""The package loads the way ComfyUI loads a custom node folder: by file path, under another name."""

import json
import subprocess
import sys
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent

LOADER = r"""
import importlib.util, json, sys
from pathlib import Path
folder = Path(sys.argv[1])
name = "custom_nodes.Some_Other_Name"
spec = importlib.util.spec_from_file_location(name, folder / "__init__.py",
                                              submodule_search_locations=[str(folder)])
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
mappings = module.NODE_CLASS_MAPPINGS
print(json.dumps({
    "mappings_is_dict": isinstance(mappings, dict),
    "display_is_dict": isinstance(module.NODE_DISPLAY_NAME_MAPPINGS, dict),
    "names": sorted(mappings),
    "all_prefixed": all(n.startswith("FrameFold") for n in mappings),
    "modules_of_classes": sorted({c.__module__.split(".")[0] for c in mappings.values()}),
    "triton_loaded": "triton" in sys.modules,
    "framefold_loaded_twice": any(m == "framefold" or m.startswith("framefold.") for m in sys.modules),
    "diffusers_or_transformers": sorted(m for m in ("diffusers", "transformers") if m in sys.modules),
}))
"""


def test_loads_as_a_custom_node_folder_under_another_name(tmp_path):
    custom_nodes = tmp_path / "custom_nodes"
    custom_nodes.mkdir()
    folder = custom_nodes / "Some_Other_Name"
    folder.symlink_to(PACKAGE_ROOT, target_is_directory=True)
    done = subprocess.run(
        [sys.executable, "-c", LOADER, str(folder)], capture_output=True, text=True, cwd=tmp_path, timeout=120
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["mappings_is_dict"] and report["display_is_dict"]
    assert report["all_prefixed"], report["names"]
    assert report["modules_of_classes"] in ([], ["custom_nodes"])  # classes come from this copy only
    assert not report["triton_loaded"]
    assert not report["framefold_loaded_twice"]  # no absolute `import framefold` inside the package
    assert report["diffusers_or_transformers"] == []
