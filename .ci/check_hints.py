"""Lists public functions in pipelines/, nodes/ and host/ that lack type hints (exit 1 if any).

Public = the name does not start with '_' and, for methods, the class name does not either. Every parameter
except self/cls (and *args/**kwargs) needs an annotation, and the function needs a return annotation.
"""

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("pipelines", "nodes", "host")


def _missing(func: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    """Names of the parts of ``func`` that have no annotation."""
    args = func.args
    params = args.posonlyargs + args.args + args.kwonlyargs
    missing = [a.arg for a in params if a.annotation is None and a.arg not in ("self", "cls")]
    if func.returns is None:
        missing.append("return")
    return missing


def _public_functions(tree: ast.Module):
    """(qualified name, node) of module-level functions and methods of public classes."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                    yield f"{node.name}.{item.name}", item


def main() -> int:
    """Print each unhinted public function; return the exit code."""
    problems = []
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for name, func in _public_functions(tree):
                missing = _missing(func)
                if missing:
                    problems.append(
                        f"{path.relative_to(ROOT)}:{func.lineno}: {name} lacks hints for {', '.join(missing)}"
                    )
    print("\n".join(problems))
    print(f"{len(problems)} public functions without full type hints")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
