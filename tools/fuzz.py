"""Differential fuzzing of tilewise (tilewise/testing/fuzz): random tile programs run on the CPU
target and in the CUDA emulator for sm_80 and sm_90a, checked against a numpy oracle.

    python tools/fuzz.py --seed 0 --count 500            # programs 0..499
    python tools/fuzz.py --seed 0 --count 2000 --jobs 2  # in two processes
    python tools/fuzz.py --replay 1234                   # one program: its source and every target
    python tools/fuzz.py --seed 0 --count 500 --minimise --out build/fuzz   # shrink each new failure
    python tools/fuzz.py --file build/fuzz/seed7_cpu.py --targets cpu --minimise  # a saved failure
    python tools/fuzz.py --seed 0 --count 300 --targets ptx_sm80,ptx_sm90a       # NVRTC's PTX, interpreted

Failures print the program as a runnable script with its seed; --out also writes them there."""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tilewise.testing.fuzz import Failure, Outcome, Runner, generate  # noqa: E402
from tilewise.testing.fuzz.emit import program_source  # noqa: E402
from tilewise.testing.fuzz.minimise import minimise  # noqa: E402
from tilewise.testing.fuzz.runner import ALL_TARGETS, TARGETS, replay_main  # noqa: E402


def _chunk(args) -> Outcome:
    seeds, targets, batch = args
    r = Runner(targets, batch=batch)
    try:
        out = Outcome()
        for n in range(0, len(seeds), batch):
            r.run([generate(s) for s in seeds[n: n + batch]], out)
        return out
    finally:
        r.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0, help="first seed")
    ap.add_argument("--count", type=int, default=100, help="programs to run")
    ap.add_argument("--targets", default=",".join(TARGETS), help=f"comma-separated, of {', '.join(ALL_TARGETS)}")
    ap.add_argument("--batch", type=int, default=16, help="programs per CPU compilation")
    ap.add_argument("--jobs", type=int, default=1, help="processes")
    ap.add_argument("--replay", type=int, help="check the program of one seed and print its source")
    ap.add_argument("--file", help="a failure script this tool wrote: check (with --minimise, shrink) its PROGRAM")
    ap.add_argument("--minimise", action="store_true", help="shrink one failure of each kind")
    ap.add_argument("--out", help="directory for failing programs' scripts")
    ap.add_argument("--quiet", action="store_true", help="only the summary and failure headlines")
    a = ap.parse_args(argv)
    targets = tuple(t for t in a.targets.split(",") if t)
    for t in targets:
        if t not in ALL_TARGETS:
            ap.error(f"unknown target {t!r}")

    if a.file:
        ns: dict = {}
        exec(compile(Path(a.file).read_text().split('if __name__ == "__main__":')[0], a.file, "exec"), ns)
        prog = ns["PROGRAM"]
        runner = Runner(targets, batch=1)
        try:
            for t in targets:
                res = runner.check_one(prog, t)
                if not isinstance(res, Failure):
                    print(f"{t}: {'ok' if res is None else 'allowed: ' + res}")
                    continue
                if a.minimise:
                    res = minimise(res, log=(lambda s: None) if a.quiet else print)
                print(res.report())
        finally:
            runner.close()
        return 0

    if a.replay is not None:
        prog = generate(a.replay)
        print(program_source(prog))
        replay_main(prog, targets=targets)
        return 0

    t0 = time.time()
    seeds = list(range(a.seed, a.seed + a.count))
    if a.jobs > 1:
        size = max(a.batch, -(-len(seeds) // (a.jobs * 4)))
        chunks = [(seeds[n: n + size], targets, a.batch) for n in range(0, len(seeds), size)]
        out = Outcome()
        with ProcessPoolExecutor(a.jobs) as ex:
            for part in ex.map(_chunk, chunks):
                out.add(part)
                print(f"... {sum(out.ran.values())} checks, {len(out.failures)} failures", flush=True)
    else:
        out = _chunk((seeds, targets, a.batch))

    kinds: dict[str, list] = {}
    for f in out.failures:
        kinds.setdefault(f.signature(), []).append(f)
    print(f"{len(seeds)} programs in {time.time() - t0:.0f} s: checked {out.ran}, allowed limitations "
          f"{out.allowed}, degenerate {out.degenerate}, known bugs {out.known}, "
          f"failures {len(out.failures)} of {len(kinds)} kinds")
    for reason, n in out.reasons.items():
        print(f"  allowed ({n}): {reason}")
    outdir = Path(a.out) if a.out else None
    if outdir:
        outdir.mkdir(parents=True, exist_ok=True)
    for sig, fails in kinds.items():
        f = fails[0]
        print(f"\n### {sig}  (seeds {', '.join(str(x.seed) for x in fails[:12])}{' ...' if len(fails) > 12 else ''})")
        if a.minimise:
            f = minimise(f, log=(lambda s: None) if a.quiet else print)
        print(f.message if a.quiet else f.report())
        if outdir:
            (outdir / f"seed{f.seed}_{f.target}.py").write_text(
                f"# {f.target} {f.kind}: " + "\n# ".join(f.message.splitlines()[:12]) + "\n\n" + program_source(f.program))
    return 1 if out.failures else 0


if __name__ == "__main__":
    os.environ.setdefault("TILEWISE_CACHE_DIR", str(Path(__file__).resolve().parent.parent / "build" / "fuzz-cache"))
    sys.exit(main())
