"""Reading an AMDGPU code object without a GPU: its machine code (llvm-objdump) and the
resources clang allocated, from the code object's metadata note (the `.amdgpu_metadata` YAML
clang also prints at the end of its -S output): VGPRs, AGPRs (gfx90a/gfx942 accumulation
registers), SGPRs, spills, scratch (private segment) bytes and LDS (group segment) bytes."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .clang import ClangError

_FIELDS = {  # metadata key -> resource_usage key
    ".vgpr_count": "vgprs", ".agpr_count": "agprs", ".sgpr_count": "sgprs", ".vgpr_spill_count": "vgpr_spills",
    ".sgpr_spill_count": "sgpr_spills", ".private_segment_fixed_size": "scratch_bytes",
    ".group_segment_fixed_size": "lds_bytes",
}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ClangError(f"{name} is missing (Debian package llvm-19: apt-get install llvm-19)")
    return path


def _with_file(binary: bytes, *cmd: str) -> str:
    with tempfile.TemporaryDirectory(prefix="tw-hip-") as d:
        p = Path(d) / "kernel.hsaco"
        p.write_bytes(binary)
        r = subprocess.run([*cmd, str(p)], capture_output=True, check=False)
        if r.returncode != 0:
            raise ClangError(f"{Path(cmd[0]).name} failed on the code object: {r.stderr.decode(errors='replace')}")
        return r.stdout.decode(errors="replace")


def get_isa(hsaco: bytes) -> str:
    """The code object's machine code, as llvm-objdump disassembles it for its architecture."""
    return _with_file(hsaco, _tool("llvm-objdump-19"), "-d", "--no-show-raw-insn")


def kernel_descriptors(hsaco: bytes) -> str:
    """The kernel descriptors (.rodata) as llvm-objdump decodes them: `.amdhsa_*` directives such
    as the float denormal modes and the register and LDS allocations the hardware is told."""
    return _with_file(hsaco, _tool("llvm-objdump-19"), "-D", "-j", ".rodata")


def metadata(hsaco: bytes) -> str:
    """The AMDGPU metadata note (YAML text) of a code object."""
    return _with_file(hsaco, _tool("llvm-readelf-19"), "--notes")


def parse_resources(text: str) -> dict[str, dict[str, int]]:
    """Per kernel (by `.name`) the counts of _FIELDS, from metadata YAML (readelf's notes or the
    `.amdgpu_metadata` block of clang -S output; both list `- .agpr_count: ...` items per kernel)."""
    out: dict[str, dict[str, int]] = {}
    lines = text.split("amdhsa.kernels:", 1)[-1].splitlines()
    items: list[list[str]] = []
    indent = None  # the kernels' "- " column; argument lists are indented further
    for line in lines:
        m = re.match(r"^(\s*)- \.", line)
        if m and (indent is None or len(m.group(1)) == indent):
            indent = len(m.group(1))
            items.append([])
        elif indent is not None and line.strip() and len(line) - len(line.lstrip()) <= indent:
            break  # the end of the kernel list (the next top-level key)
        if items:
            items[-1].append(line.replace("- .", "  .", 1) if m and len(m.group(1)) == indent else line)
    for item in items:
        chunk = "\n".join(item)
        name = re.search(r"^\s*\.name:\s*(\S+)", chunk, re.M)
        if name is None:
            continue
        out[name.group(1)] = {field: int(m.group(1)) for key, field in _FIELDS.items()
                              if (m := re.search(rf"^\s*{re.escape(key)}:\s*(\d+)", chunk, re.M))}
    return out


def resource_usage(hsaco: bytes) -> dict[str, dict[str, int]]:
    """{kernel name: {"vgprs", "agprs", "sgprs", "vgpr_spills", "sgpr_spills", "scratch_bytes",
    "lds_bytes"}} of every kernel in the code object."""
    return parse_resources(metadata(hsaco))


def kernel_resources(hsaco: bytes) -> dict[str, int]:
    """The largest of each count over the code object's kernels, with the names the other GPU
    targets use as well: registers (the metadata's `.vgpr_count`, which on gfx90a / gfx942, one
    register file of 512 per lane, is already the total: the architectural VGPRs rounded up to 4
    plus the AGPRs; clang -S prints it as TotalNumVgprs), spill_bytes (scratch) and shared_bytes
    (LDS); arch_vgprs is the architectural part (at most 256, as the AGPRs)."""
    funcs = resource_usage(hsaco)
    if not funcs:
        raise ClangError("the code object's metadata lists no kernels")
    out = {k: max(f.get(k, 0) for f in funcs.values()) for k in _FIELDS.values()}
    out["registers"] = out["vgprs"]
    out["arch_vgprs"] = max(f.get("vgprs", 0) - f.get("agprs", 0) for f in funcs.values())
    out["spill_bytes"] = out["scratch_bytes"]
    out["shared_bytes"] = out["lds_bytes"]
    return out
