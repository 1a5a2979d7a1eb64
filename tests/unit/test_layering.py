"""Every layering rule DEVELOPERS.md writes down, held on every import of the library, the components and
the pipeline: the package order (read from DEVELOPERS.md's ``layers`` block), imports through a package's
face, only steps compose steps, where kfp and the heavy libraries may be imported, and no import circles."""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import REPO_ROOT

SRC = REPO_ROOT / "src" / "gated_training"
KFP_ALLOWED = {"kubeflow/client.py", "kubeflow/local_run.py", "kubeflow/spec.py"}
HEAVY = (
    "great_expectations",
    "mlflow",
    "google.cloud",
    "kubernetes",
    "mlserver",
    "mlserver_sklearn",
    "matplotlib",
    "pyspark",
)
HEAVY_AT_TOP_ALLOWED = {"serving/runtime.py": ("mlserver", "mlserver_sklearn"), "tracking/mlflow_model.py": ("mlflow",)}


def layers() -> list[str]:
    text = (REPO_ROOT / "DEVELOPERS.md").read_text()
    block = re.search(r"```layers\n(.*?)```", text, re.S)
    assert block, "DEVELOPERS.md has no ```layers block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


@dataclass(frozen=True)
class Import:
    source: str  # the importing file, relative to src/gated_training (or components/..., pipelines/...)
    module: str  # the imported module, absolute
    names: tuple[str, ...]  # for `from X import a, b`; empty for `import X`
    top_level: bool
    line: int


SHIMS = {"mlserver_runtime.py": "serving"}  # a core-level name kept for earlier ServingRuntimes: it is the runtime


def package_of(relative: str) -> str:
    parts = relative.split("/")
    return parts[0] if len(parts) > 1 else SHIMS.get(relative, "core")


def imports(path: Path, relative: str) -> list[Import]:
    tree = ast.parse(path.read_text())
    found = []
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(Import(relative, node.module, tuple(a.name for a in node.names), id(node) in top, node.lineno))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(relative, alias.name, (), id(node) in top, node.lineno))
    return found


def library() -> list[Import]:
    return [i for path in SRC.rglob("*.py") for i in imports(path, str(path.relative_to(SRC)))]


def outside() -> list[Import]:
    return [
        i
        for folder in ("components", "pipelines")
        for path in (REPO_ROOT / folder).glob("*.py")
        for i in imports(path, f"{folder}/{path.name}")
    ]


def target_package(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "gated_training":
        return None
    if len(parts) == 1:
        return "core"
    return parts[1] if (SRC / parts[1]).is_dir() else "core"


def test_the_layers_block_names_every_package_and_nothing_else():
    packages = {path.name for path in SRC.iterdir() if path.is_dir() and (path / "__init__.py").exists()}
    assert set(layers()) == packages | {"core"}


def test_every_import_goes_down_the_layers():
    order = {name: index for index, name in enumerate(layers())}
    violations = []
    for item in library():
        target = target_package(item.module)
        if target is None:
            continue
        own = package_of(item.source)
        if order[target] > order[own]:
            violations.append(f"{item.source}:{item.line} ({own}) imports {item.module} ({target})")
    assert not violations, "\n".join(violations)


def test_other_packages_are_imported_through_their_face():
    faces = {
        name: set(importlib.import_module(f"gated_training.{name}").__all__)
        for name in layers()
        if name not in ("core", "steps", "cli")
    }
    violations = []
    for item in [*library(), *outside()]:
        target = target_package(item.module)
        if target not in faces or package_of(item.source) == target or item.source == "mlserver_runtime.py":
            continue
        parts = item.module.split(".")
        if len(parts) > 2:
            violations.append(f"{item.source}:{item.line} imports {item.module}: use gated_training.{target}'s face")
        else:
            unknown = [name for name in item.names if name not in faces[target]]
            if unknown or not item.names:
                violations.append(
                    f"{item.source}:{item.line} takes {unknown or item.module} from gated_training.{target}, "
                    "which its face does not list"
                )
    assert not violations, "\n".join(violations)


def test_only_steps_compose_steps_and_each_component_calls_its_own():
    for item in library():
        if item.module.startswith("gated_training.steps"):
            assert package_of(item.source) == "steps", f"{item.source}:{item.line} imports {item.module}"
    for item in outside():
        if item.module.startswith("gated_training.steps") and item.source.startswith("components/"):
            assert item.module == f"gated_training.steps.{Path(item.source).stem}", (item.source, item.module)


def test_kfp_only_inside_functions_of_the_kubeflow_modules_that_need_it():
    for item in library():
        if item.module == "kfp" or item.module.startswith("kfp."):
            assert item.source in KFP_ALLOWED and not item.top_level, f"{item.source}:{item.line} imports {item.module}"


def test_heavy_libraries_are_never_imported_at_a_modules_top_level():
    for item in library():
        heavy = next((name for name in HEAVY if item.module == name or item.module.startswith(f"{name}.")), None)
        if heavy and item.top_level:
            assert heavy in HEAVY_AT_TOP_ALLOWED.get(item.source, ()), (
                f"{item.source}:{item.line} imports {item.module}"
            )


def test_no_import_circles():
    def module_of(relative: str) -> str:
        dotted = "gated_training." + relative.removesuffix(".py").replace("/", ".")
        return dotted.removesuffix(".__init__")

    modules = {module_of(str(p.relative_to(SRC))) for p in SRC.rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for item in library():
        source = module_of(item.source)
        candidates = [item.module] + [f"{item.module}.{name}" for name in item.names]
        for candidate in candidates:
            if candidate in modules and candidate != source and not source.startswith(candidate + "."):
                if not candidate.endswith(tuple(f".{n}" for n in ("__init__",))):
                    edges[source].add(candidate)
    # A package's face imports its own modules; a module importing its own package's face is the circle to find.
    seen: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        seen[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if seen.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(nxt) :] + [nxt]))
            if nxt not in seen:
                visit(nxt)
        stack.pop()
        seen[node] = 2

    for module in sorted(modules):
        if module not in seen:
            visit(module)


def scripts() -> list[Path]:
    """Every Python file outside the package that imports it: components, pipelines, benchmarks, the
    image's scripts and the tests' helpers (a reshape that renames a module must not strand one)."""
    folders = ("components", "pipelines", "benchmarks", "component_images", "tests")
    return [
        path
        for folder in folders
        for path in (REPO_ROOT / folder).rglob("*.py")
        if "node_modules" not in path.parts and "__pycache__" not in path.parts
    ]


def test_every_import_of_the_library_resolves_everywhere():
    """``from gated_training.x import y`` in any file of the repository names a module that exists and a name
    it defines: the image's smoke script once imported ``gated_training.registry.store.store`` after a reshape,
    which only the image test (not in make test) would have found."""
    broken = []
    files = [*SRC.rglob("*.py"), *scripts()]
    for path in files:
        for found in imports(path, str(path.relative_to(REPO_ROOT))):
            # serving.runtime imports MLServer, which only the serving venv and image have
            if not found.module.startswith("gated_training") or found.module == "gated_training.serving.runtime":
                continue
            try:
                module = importlib.import_module(found.module)
            except ImportError as exc:
                broken.append(f"{found.source}:{found.line}: {found.module} ({exc})")
                continue
            for name in found.names:
                if name != "*" and not hasattr(module, name):
                    try:
                        importlib.import_module(f"{found.module}.{name}")
                    except ImportError:
                        broken.append(f"{found.source}:{found.line}: {found.module} has no {name}")
    assert not broken, "\n".join(broken)
