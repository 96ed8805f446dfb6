"""Compiles benchmark kernels with one compiler and prints one JSON object per line (the child
process of benchmarks/vs_peers.py; no GPU needed):

    python compile_cells.py COMPILER KERNEL:ARCH [KERNEL:ARCH ...]

COMPILER is tilewise (run it with tilewise's interpreter), tilelang or triton (run them with the
peers' interpreter). The first line is {"versions": ...} or {"import_error": ...}; then for each
cell {"start": ...} and {"cell": ..., "cubin": base64, "dynamic_shared": bytes, "seconds": ...}
or {"cell": ..., "error": ...}. The parent reads the cubins (cuobjdump) itself, so this script
needs nothing from tilewise on the peers' side."""
import base64
import importlib
import json
import os
import re
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def short_error(exc: BaseException) -> str:
    """One line for a table cell: a C++ compiler's first diagnostic (and how many there were),
    else the last line that names an error (TVM and Triton append long tracebacks)."""
    lines = [ln.strip() for ln in f"{type(exc).__name__}: {exc}".splitlines() if ln.strip()]
    diags = [ln for ln in lines if re.search(r"\berror\b\s*:", ln) and not ln.startswith(type(exc).__name__)]
    if diags:
        count = next((ln for ln in lines if re.search(r"\d+ errors? detected", ln)), "")
        first = re.sub(r"^\S+\(\d+\):\s*", "", diags[0])
        return f"{first}{' [' + count + ']' if count else ''}"[:400]
    for ln in reversed(lines):
        if re.search(r"Error|error|Check failed|failed|not supported|exceed", ln):
            return ln[:400]
    return (lines[-1] if lines else type(exc).__name__)[:400]


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return "?"
    m = re.search(r"release [\d.]+, V([\d.]+)", out)
    return m.group(1) if m else "?"


# ---------------------------------------------------------------------------- tilewise


class Tilewise:
    def __init__(self):
        import tilewise
        import tilewise.language

        # tl_kernels.py says `import tilelang`: here that name is tilewise
        sys.modules["tilelang"] = tilewise
        sys.modules["tilelang.language"] = tilewise.language
        sys.path.insert(0, HERE)
        self.tilewise = tilewise
        self.kernels = importlib.import_module("tl_kernels")

    def versions(self) -> dict:
        from tilewise.backend.cuda.nvrtc import nvrtc_version

        root = os.path.dirname(os.path.dirname(HERE))
        try:
            rev = subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"], capture_output=True,
                                 text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            rev = "?"
        return {"tilewise": f"git {rev or '?'}", "backend": f"NVRTC {'.'.join(map(str, nvrtc_version()))}"}

    def compile(self, name: str, arch: str) -> tuple[bytes, int]:
        kernel = self.tilewise.compile(self.kernels.build(name, arch), target=f"cuda -arch={arch}",
                                       execution_backend="emulator")
        return kernel.build.binary, max(k.shared_bytes for k in kernel.build.module.kernels)


# ---------------------------------------------------------------------------- TileLang


class TileLang:
    def __init__(self):
        import tilelang
        from tilelang import tvm
        from tilelang.cuda.backend import tilelang_callback_cuda_compile

        sys.path.insert(0, HERE)
        self.tilelang, self.tvm = tilelang, tvm
        self.nvcc = tilelang_callback_cuda_compile
        self.kernels = importlib.import_module("tl_kernels")

    def versions(self) -> dict:
        from tilelang.contrib.nvcc import get_nvcc_compiler

        return {"tilelang": self.tilelang.__version__, "backend": f"nvcc {tool_version([get_nvcc_compiler(), '--version'])}"}

    def compile(self, name: str, arch: str) -> tuple[bytes, int]:
        """What tilelang.compile does up to the cubin (lower with the default pass configs, then the
        nvcc callback with TileLang's flags), stopping before it loads the cubin on a GPU."""
        target = self.tvm.target.Target({"kind": "cuda", "arch": arch})
        with self.tvm.transform.PassContext(opt_level=3), target:
            artifact = self.tilelang.lower(self.kernels.build(name, arch), target=target)
        cubin = self.nvcc(artifact.kernel_source, target)
        shared = 0
        for _, f in artifact.device_mod.functions.items():
            if f.attrs is not None and "dyn_shared_memory_buf" in f.attrs:
                shared = max(shared, int(f.attrs["dyn_shared_memory_buf"]))
        return bytes(cubin), shared


# ---------------------------------------------------------------------------- Triton


class Triton:
    def __init__(self):
        import triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource

        os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")  # Triton 3.9's default, without its warning
        sys.path.insert(0, HERE)
        self.triton, self.GPUTarget, self.ASTSource = triton, GPUTarget, ASTSource
        self.kernels = importlib.import_module("triton_kernels")

    def versions(self) -> dict:
        ptxas = os.path.join(os.path.dirname(self.triton.__file__), "backends", "nvidia", "bin", "ptxas")
        return {"triton": self.triton.__version__, "backend": f"bundled ptxas {tool_version([ptxas, '--version'])}"}

    def compile(self, name: str, arch: str) -> tuple[bytes, int]:
        if name not in self.kernels.KERNELS:
            raise LookupError("no Triton version")
        fn, args, options = self.kernels.KERNELS[name]()
        signature, constexprs, attrs = {}, {}, {}
        for i, (arg, kind, value) in enumerate(args):
            # what Triton's launcher does for torch tensors and Python ints
            if kind == "constexpr" or (kind == "i32" and value == 1):
                signature[arg], constexprs[arg] = "constexpr", value
            else:
                signature[arg] = kind
                if kind.startswith("*") or (kind == "i32" and value % 16 == 0):
                    attrs[(i,)] = [["tt.divisibility", 16]]
        cap = int(re.sub(r"\D", "", arch))
        target = self.GPUTarget("cuda", cap, 32)
        compiled = self.triton.compile(self.ASTSource(fn, signature, constexprs, attrs), target=target,
                                       options=options)
        return compiled.asm["cubin"], int(compiled.metadata.shared)


COMPILERS = {"tilewise": Tilewise, "tilelang": TileLang, "triton": Triton}


def main(argv: list[str]) -> int:
    which, cells = argv[0], [c.split(":") for c in argv[1:]]
    try:
        compiler = COMPILERS[which]()
        emit({"versions": compiler.versions()})
    except Exception as exc:  # a missing or broken install: every cell says so
        emit({"import_error": short_error(exc)})
        return 0
    for name, arch in cells:
        emit({"start": [name, arch]})
        t = time.perf_counter()
        try:
            cubin, shared = compiler.compile(name, arch)
            emit({"cell": [name, arch], "cubin": base64.b64encode(cubin).decode(), "dynamic_shared": shared,
                  "seconds": time.perf_counter() - t})
        except Exception as exc:
            if os.environ.get("VS_PEERS_TRACEBACK"):
                traceback.print_exc()
            emit({"cell": [name, arch], "error": short_error(exc), "seconds": time.perf_counter() - t})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
