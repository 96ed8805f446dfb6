"""Run TileLang's own test directories against tilewise, with the import swapped.

    python tools/yardstick.py --tag v0.1.8 --mode cpu
    python tools/yardstick.py --tag v0.1.6.post1 --mode emulator --dirs language kernel

The tests come from a git checkout of TileLang (`--repo`, a bare clone is fine) at `--tag`. Each
file's `tilelang` imports become `tilewise` imports (nothing else in the file changes), and a
conftest makes the run possible on a machine without a GPU:

- `--mode cpu`: kernels compile for tilewise's CPU target (a `target="cuda"` in the test is
  redirected there); `--mode emulator`: they compile for CUDA (`--arch`) and run in the
  thread-IR emulator.
- torch tensors the tests put on `"cuda"` are made on the CPU, `torch.cuda.synchronize()` is a
  no-op, and the `requires_cuda*` decorators see the emulated device's compute capability.

Every test file runs in its own pytest process (a crash or a hang costs one file, with
`--timeout` seconds per file); the script prints pass/fail/skip counts per file and in total,
and with `--failures` the first line of every failure's reason. It is a measuring tool for the
closing notes, not part of `make test`.
"""
from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MIRROR = Path("/work/.mirror/tile-ai+tilelang/repo")
ROOT = Path(__file__).resolve().parents[1]

_IMPORT = re.compile(r"^(?P<ind>\s*)import tilelang(?P<sub>(\.\w+)*)(?P<alias>\s+as\s+\w+)?\s*$")
_FROM = re.compile(r"^(?P<ind>\s*)from tilelang(?P<sub>(\.\w+)*) import ")
_TVM_IMPORT = re.compile(r"^(?P<ind>\s*)import tvm(?P<sub>(\.\w+)*)(?P<alias>\s+as\s+\w+)?\s*$")
_TVM_FROM = re.compile(r"^(?P<ind>\s*)from tvm(?P<sub>(\.\w+)*) import ")


def swap_imports(source: str) -> str:
    """The file with its `tilelang` (and bare `tvm`) imports pointing at tilewise; every other
    line is left as it is."""
    out = []
    for line in source.splitlines():
        m = _IMPORT.match(line)
        if m:
            ind, sub, alias = m["ind"], m["sub"], m["alias"]
            if alias:
                line = f"{ind}import tilewise{sub}{alias}"
            elif sub:  # `import tilelang.testing` binds the name `tilelang`
                line = f"{ind}import tilewise{sub}; import tilewise as tilelang"
            else:
                line = f"{ind}import tilewise as tilelang"
        elif _FROM.match(line):
            line = _FROM.sub(lambda m: f"{m['ind']}from tilewise{m['sub']} import ", line)
        elif (m := _TVM_IMPORT.match(line)):
            line = f"{m['ind']}import tilewise.tvm{m['sub']}{m['alias'] or ' as tvm'}" if m["sub"] \
                else f"{m['ind']}from tilewise import tvm{m['alias'] or ''}"
        elif _TVM_FROM.match(line):
            line = _TVM_FROM.sub(lambda m: f"{m['ind']}from tilewise.tvm{m['sub']} import ", line)
        out.append(line)
    return "\n".join(out) + "\n"


CONFTEST = '''
# Written by tools/yardstick.py: runs TileLang's tests on a machine without a GPU.
import os
import sys

import pytest

MODE = os.environ["YARDSTICK_MODE"]
ARCH = os.environ.get("YARDSTICK_ARCH", "sm_80")
CC = (int(ARCH[3]), int(ARCH[4]))

import torch  # noqa: E402

import tilewise  # noqa: E402
import tilewise.testing as tt  # noqa: E402
from tilewise.ir import machine as _machine  # noqa: E402


def _cpu(dev):
    s = str(dev) if dev is not None else None
    return "cpu" if s is not None and s.startswith("cuda") else dev


class _CudaToCpu(torch.overrides.TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if "device" in kwargs:
            kwargs["device"] = _cpu(kwargs["device"])
        if func in (torch.Tensor.to,) and args and len(args) > 1 and isinstance(args[1], (str, torch.device)):
            args = (args[0], _cpu(args[1]), *args[2:])
        return func(*args, **kwargs)


_mode = _CudaToCpu()
_mode.__enter__()
torch.Tensor.cuda = lambda self, *a, **k: self
torch.cuda.is_available = lambda: True
torch.cuda.synchronize = lambda *a, **k: None
torch.cuda.get_device_capability = lambda *a, **k: CC
torch.cuda.current_device = lambda: 0


class _Props:  # what tests read from torch.cuda.get_device_properties: the emulated device
    major, minor = CC
    name = f"tilewise emulated {ARCH}"
    multi_processor_count = 108
    total_memory = 40 << 30
    # tests size their tiles by these: the emulated architecture's limits (ir/machine.py)
    shared_memory_per_block = 48 << 10
    shared_memory_per_block_optin = _machine.cuda_machine(ARCH).max_shared_bytes
    shared_memory_per_multiprocessor = shared_memory_per_block_optin + (1 << 10)
    max_threads_per_block = 1024
    warp_size = 32


torch.cuda.get_device_properties = lambda *a, **k: _Props()
torch.cuda.device_count = lambda: 1
torch.cuda.manual_seed = lambda *a, **k: None
torch.cuda.manual_seed_all = lambda *a, **k: None
torch.cuda.empty_cache = lambda: None


def _runs(fn):
    return fn


def _version(major, minor=0, mode="ge"):
    ok = tt._COMPARE[mode](CC, (major, minor))
    return pytest.mark.skipif(not ok, reason=f"emulated device is {ARCH}")


tt.requires_cuda = _runs
tt.requires_cuda_or_cdna = _runs
tt.requires_cuda_compute_version = _version
for _m in ("ge", "gt", "le", "lt", "eq"):
    setattr(tt, f"requires_cuda_compute_version_{_m}", lambda a, b=0, _m=_m: _version(a, b, _m))

import importlib  # noqa: E402

_target = importlib.import_module("tilewise.jit.target")
# TileLang's execution_backend="nvrtc" launches through the CUDA driver, which this machine has
# not: here it means the mode's runtime, like TileLang's other host-launcher names.
_target.TILELANG_BACKENDS = (*_target.TILELANG_BACKENDS, "nvrtc")

if MODE == "cpu":
    os.environ["TILEWISE_TARGET"] = "cpu"

    _parse = _target.parse_target

    def _to_cpu(target):
        t = _parse(target)
        return _parse("cpu") if t.kind == "cuda" else t

    for _mod in list(sys.modules.values()):
        if getattr(_mod, "parse_target", None) is _parse:
            _mod.parse_target = _to_cpu
else:
    os.environ["TILEWISE_TARGET"] = f"cuda -arch={ARCH}"
    os.environ["TILEWISE_EXECUTION_BACKEND"] = "emulator"
'''

_SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|error|errors|xfailed|xpassed)")


def extract(repo: Path, tag: str, dirs: list[str], dest: Path) -> list[Path]:
    paths = [f"testing/python/{d}" for d in dirs]
    tar = subprocess.run(["git", "-C", str(repo), "archive", tag, *paths], check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        tf.extractall(dest, filter="data")
    files = sorted(dest.glob("testing/python/*/test_*.py"))
    for f in dest.rglob("*.py"):
        f.write_text(swap_imports(f.read_text()))
    (dest / "conftest.py").write_text(CONFTEST)
    return files


def run_file(f: Path, root: Path, mode: str, arch: str, timeout: float, env_extra: dict) -> tuple[dict, str]:
    env = {**os.environ, "YARDSTICK_MODE": mode, "YARDSTICK_ARCH": arch, "PYTHONPATH": str(ROOT), **env_extra}
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", "--rootdir", str(root),
           "-o", "addopts=", str(f)]
    try:
        p = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
        out = p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return {"timeout": 1}, out + f"\nTIMEOUT after {timeout:.0f} s"
    counts: dict = {}
    tail = out.strip().splitlines()[-1] if out.strip() else ""
    for n, what in _SUMMARY.findall(tail):
        counts["error" if what.startswith("error") else what] = int(n)
    if not counts:
        counts["error"] = 1
    return counts, out


def failure_lines(out: str) -> list[str]:
    return [ln for ln in out.splitlines() if ln.startswith(("FAILED ", "ERROR ", "SKIPPED "))]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", type=Path, default=MIRROR)
    ap.add_argument("--tag", default="v0.1.8")
    ap.add_argument("--dirs", nargs="+", default=["language", "kernel", "jit", "autotune"])
    ap.add_argument("--mode", choices=["cpu", "emulator"], default="cpu")
    ap.add_argument("--arch", default="sm_80")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per test file")
    ap.add_argument("-k", dest="only", default="", help="run only files whose name contains this")
    ap.add_argument("--failures", action="store_true", help="print every failure / skip reason")
    ap.add_argument("--keep", type=Path, help="extract into this directory (kept) instead of a temp one")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="yardstick-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        files = [f for f in extract(args.repo, args.tag, args.dirs, root) if args.only in f.name]
        total: dict = {}
        cache = {"TILEWISE_CACHE_DIR": str(root / ".cache")}
        for f in files:
            counts, out = run_file(f, root, args.mode, args.arch, args.timeout, cache)
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
            rel = f.relative_to(root / "testing/python")
            print(f"{str(rel):70s} " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())), flush=True)
            if args.failures:
                for ln in failure_lines(out):
                    print("    " + ln[:300])
                if "error" in counts or "timeout" in counts:
                    print("    " + "\n    ".join(out.strip().splitlines()[-6:]))
        print(f"\n{args.tag} {args.mode} ({args.arch if args.mode == 'emulator' else 'cpu'}): "
              + " ".join(f"{k}={v}" for k, v in sorted(total.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
