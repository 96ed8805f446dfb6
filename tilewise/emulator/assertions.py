"""T.device_assert in the emulator (language/control.py): the first active thread whose condition
is false stops the run with the message, which names the user's line, and the thread."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..ir.expr import Call
from .errors import EmulatorError, where

if TYPE_CHECKING:  # annotations only: the compiler calls into this module
    from .compiler import Compiler


class DeviceAssertError(EmulatorError):
    """A T.device_assert whose condition was false in some thread."""


def _device_assert(comp: Compiler, e: Call):
    fc = comp.expr(e.args[0])
    msg = e.attrs.get("msg", "T.device_assert failed")
    span = comp.span

    def check(st):
        ok = np.broadcast_to(np.asarray(fc(st), bool), (st.L,))
        bad = ~ok if st.mask is None else (~ok & st.mask)
        if bad.any():
            lane = int(np.flatnonzero(bad)[0])
            raise DeviceAssertError(f"{msg}, in {st.thread_of_lane(lane)} (at {where(span)})")

    return check


HANDLERS = {"device_assert": _device_assert}
