"""The package's layer order (docs/DESIGN.md §2): a module may import from its own layer and the
layers below it, never from a layer above, and sibling layers (the backends, the emulator) never
from each other. Every import counts, including those inside functions.

To see it fail, add `from ..jit import cache` to tilewise/ir/expr.py (inside a function or not)
and run `pytest tests/test_layers.py`: it names the file, the line and the two layers."""
from __future__ import annotations

import ast
from pathlib import Path

import tilewise

PACKAGE = Path(tilewise.__file__).parent

# bottom to top; a layer is a list of module prefixes (the longest matching prefix decides), and
# the prefixes listed together in one tuple are siblings that must not import each other
LAYERS: list[tuple[str, ...]] = [
    ("tilewise.errors", "tilewise.env", "tilewise.version", "tilewise.ir.span", "tilewise.math", "tilewise.engine",
     "tilewise.rng",  # curand generators in Python: the emulator runs them, renderers embed their tables
     # the executors' run-time error classes (OutOfBoundsError, RaceError, ...): the emulator, the PTX
     # interpreter and the CPU library's bounds checks raise the same ones
     "tilewise.emulator.errors"),
    ("tilewise.ir",),
    ("tilewise.layout",),
    ("tilewise.tools",),  # pictures of layouts (kernel.report, in jit, draws with them)
    ("tilewise.tileop",),
    ("tilewise.transform",),
    ("tilewise.backend.c_style",),  # what the renderers of both backends share
    ("tilewise.backend.cpu", "tilewise.backend.cuda", "tilewise.emulator"),
    ("tilewise.backend.hip",),  # the HIP renderer is the CUDA one with AMD's spellings
    ("tilewise.ptx",),  # the second, independent executor: shares only the emulator's report classes
    ("tilewise.testing",),
    ("tilewise.profiler",),
    ("tilewise.jit",),
    ("tilewise.autotuner",),
    ("tilewise.language",),
    ("tilewise.intrinsics", "tilewise.utils"),
    ("tilewise.torch",),  # torch custom operators and autograd over compiled kernels
    ("tilewise.testing.fuzz",),  # the differential fuzzer compiles and runs programs: above everything it tests
    ("tilewise",),
]


def _position(module: str) -> tuple[int, str]:
    """(layer index, the matching prefix) of a module."""
    best = None
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > len(best[1]):
                    best = (i, prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, source: str):
    """(line, imported module) for every tilewise import in the file."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("tilewise"):
                continue
            # `from . import x` / `from .jit import build`: x may be a submodule
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield node.lineno, sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() or (
                    PACKAGE.parent / sub.replace(".", "/")).is_dir() else target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("tilewise"):
                    yield node.lineno, alias.name


def violations(path: Path, source: str) -> list[str]:
    module = _module_name(path)
    here, here_prefix = _position(module)
    rel = path.relative_to(PACKAGE.parent)
    out = []
    for line, target in _imports(path, source):
        there, there_prefix = _position(target)
        if there > here:
            out.append(f"{rel}:{line}: {module} ({here_prefix}) imports {target} from the layer above ({there_prefix})")
        elif there == here and here_prefix != there_prefix and here > 0:
            out.append(f"{rel}:{line}: {module} ({here_prefix}) imports its sibling {target} ({there_prefix})")
    return out


def test_no_module_imports_from_a_layer_above_or_a_sibling():
    found = [v for p in sorted(PACKAGE.rglob("*.py")) for v in violations(p, p.read_text())]
    assert found == []


def test_the_check_sees_function_level_imports():
    probe = PACKAGE / "ir" / "probe.py"  # not written: the check reads the source given
    found = violations(probe, "def f():\n    from ..jit import cache\n")
    assert found and "probe.py:2" in found[0] and "tilewise.jit" in found[0], found
    assert violations(PACKAGE / "emulator" / "probe.py", "from ..backend.cuda import nvrtc\n")  # a sibling
