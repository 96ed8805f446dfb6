"""tw_mfma.h on its own: every wrapper compiles with clang-19 for gfx942 to its v_mfma instruction
(the builtins' operand vector types are right), with no scratch, from register arrays indexed by
constants."""
import pytest

from tilewise.backend.hip.clang import compile_asm
from tilewise.backend.hip.inspect import parse_resources
from tilewise.layout.mfma_layouts import MFMA

pytestmark = pytest.mark.usefixtures("clang19")


def _kernel(ins) -> str:
    ab = "tw::half" if ins.kpack == 4 else "int8_t"
    c = "int32_t" if ins.c_dtype == "int32" else "float"
    return f"""
#include "tw_hip.h"
extern "C" __global__ void __launch_bounds__(64) k(const {ab}* A, const {ab}* B, {c}* C) {{
  const int l = __builtin_amdgcn_workitem_id_x();
  {ab} a[{ins.kpack}], b[{ins.kpack}];
  {c} acc[{ins.c_regs}];
  for (int i = 0; i < {ins.kpack}; ++i) {{ a[i] = A[l * {ins.kpack} + i]; b[i] = B[l * {ins.kpack} + i]; }}
  for (int i = 0; i < {ins.c_regs}; ++i) acc[i] = C[l * {ins.c_regs} + i];
  tw::{ins.wrapper}(a, b, acc);
  tw::{ins.wrapper}(a, b, acc);
  for (int i = 0; i < {ins.c_regs}; ++i) C[l * {ins.c_regs} + i] = acc[i];
}}
"""


@pytest.mark.parametrize("name", sorted(MFMA))
def test_wrapper_compiles_to_its_instruction(name):
    ins = MFMA[name]
    asm = compile_asm(_kernel(ins), "gfx942")
    body = asm.split(".Lfunc_end")[0]
    assert body.count(ins.mnemonic + " ") == 2, ins.mnemonic
    res = parse_resources(asm)["k"]
    assert res["scratch_bytes"] == 0 and res["vgpr_spills"] == 0


def test_wrong_item_size_is_a_compile_error():
    bad = _kernel(MFMA["mfma_f32_16x16x16f16"]).replace("tw::half a[4], b[4]", "float a[4], b[4]")
    with pytest.raises(Exception, match="A items of the wrong size"):
        compile_asm(bad, "gfx942")
