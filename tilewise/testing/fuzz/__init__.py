"""A differential fuzzer: random valid tile programs (generate.py) described as data
(program.py), emitted as tilewise source (emit.py), run on the CPU target and in the CUDA
emulator for sm_80 and sm_90a (runner.py), and compared with a numpy interpretation of the same
description (oracle.py). Failures are printed as runnable scripts and can be minimised
(minimise.py). The command line is tools/fuzz.py."""
from .generate import generate
from .program import Program
from .runner import ALLOWED, TARGETS, Failure, Outcome, Runner, fuzz

__all__ = ["ALLOWED", "TARGETS", "Failure", "Outcome", "Program", "Runner", "fuzz", "generate"]
