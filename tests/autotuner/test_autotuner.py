"""The autotuner: the fastest configuration wins, failing ones are skipped with their reason,
configurations compile in worker processes, CUDA without a GPU is refused, and tuning results
are cached on disk across processes under a key that changes with every part it depends on."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import tilewise
import tilewise.language as T
from tilewise.autotuner import AutotuneError, AutoTuner, ProfileArgs, result_cache, set_autotune_inputs
from tilewise.autotuner.candidates import bind_configs, build_funcs
from tilewise.jit import cache
from tilewise.jit.target import Target, gpu_present

N = 8192
# Rounds of the slow configurations: about 100 ms against 0.03 ms for one round. The margin is
# wide because on a loaded machine every call of a multi-threaded kernel can wait milliseconds
# for its threads to get a core; only the test of who wins depends on timing.
SLOW = 8000


def repeat_max(N, block=64, rounds=1, offset=0.0):
    """B = A + offset, computed as a max over `rounds` identical terms: the same result for every
    `rounds`, with run time proportional to it."""

    @T.prim_func
    def main(A: T.Tensor((N,), "float32"), B: T.Tensor((N,), "float32")):
        with T.Kernel(T.ceildiv(N, block)) as bx:
            for i in T.Parallel(block):
                if bx * block + i < N:
                    acc = T.alloc_var("float32", init=-1e30)
                    for r in T.serial(rounds):
                        acc = T.max(acc, A[bx * block + i] + r * 0.0)
                    B[bx * block + i] = acc + offset

    return main


def repeat_max_dynamic(block=64, rounds=1):
    n = T.dynamic("n")
    return repeat_max(n, block, rounds)


def copy_ref(A):
    return A * 1


@pytest.fixture(scope="module", autouse=True)
def module_cache(tmp_path_factory):
    """A cache of this module's own: kernels compiled by one test are reused by the next."""
    d = tmp_path_factory.mktemp("autotune-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TILEWISE_CACHE_DIR", str(d))
        mp.delenv("TILEWISE_DISABLE_CACHE", raising=False)
        mp.delenv("TILEWISE_AUTOTUNE_DISABLE_CACHE", raising=False)
        mp.setenv("TILEWISE_AUTOTUNE_PROGRESS", "1")
        yield d


@pytest.fixture
def fresh_tuning(module_cache):
    """No tuning result in memory or on disk (compiled kernels stay)."""
    AutoTuner._memory.clear()
    for p in module_cache.glob("autotune-*"):
        shutil.rmtree(p)
    yield
    AutoTuner._memory.clear()


@pytest.fixture
def a():
    return np.random.default_rng(0).random(N).astype(np.float32)


def _tuner(configs, **profile):
    def kernel(block=64, rounds=1, offset=0.0):
        return repeat_max(N, block, rounds, offset)

    profile.setdefault("ref_prog", copy_ref)
    return AutoTuner.from_kernel(kernel, configs).set_compile_args(out_idx=-1, target="cpu", **profile)


# ---------------------------------------------------------------------------------------------
# choosing and skipping


def test_fastest_config_wins_with_the_decorator(fresh_tuning, a, capfd):
    @tilewise.autotune(configs=[{"rounds": SLOW}, {"rounds": 1}, {"rounds": SLOW // 3}], warmup=1, rep=10)
    @tilewise.jit(out_idx=-1, target="cpu")
    def tuned(N, block=64, rounds=1):
        return repeat_max(N, block, rounds)

    with set_autotune_inputs(a):
        kernel = tuned(N)
        assert tuned(N) is kernel  # tuned once per argument tuple
        result = tuned.tune(N)
    assert kernel.config == {"rounds": 1} == result.config
    assert not result.cache_hit and result.kernel is kernel
    assert 0 < kernel.latency == result.latency
    np.testing.assert_array_equal(kernel(a), a)
    err = capfd.readouterr().err
    assert "autotune tuned: compiling" in err and "3/3" in err and "autotune tuned: measuring" in err


def test_from_kernel_with_reference_check(fresh_tuning):
    # no inputs given: the profiler makes them (torch tensors when torch is installed)
    tuner = AutoTuner.from_kernel(lambda block=64, rounds=1: repeat_max(N, block, rounds),
                                  configs=[{"rounds": 3}, {"rounds": 1, "block": 128}])
    result = tuner.set_compile_args(out_idx=[-1], target="cpu", ref_prog=copy_ref, atol=0, rtol=0).run(warmup=1, rep=5)
    assert result.config in ({"rounds": 3}, {"rounds": 1, "block": 128})
    assert result.latency > 0 and result.ref_latency > 0
    assert result.skipped == [] and result.libcode
    assert result.func.name == "main"
    x = np.arange(N, dtype=np.float32)
    np.testing.assert_array_equal(result.kernel(x), x)


def test_failing_configs_are_skipped_with_their_reason(fresh_tuning, a, caplog):
    configs = [{"block": 0}, {"offset": 1.0}, {"rounds": 2}]
    with caplog.at_level(logging.WARNING, logger="tilewise.autotuner"), set_autotune_inputs(a):
        result = _tuner(configs).run(warmup=1, rep=5)
    assert result.config == {"rounds": 2}
    reasons = dict((repr(c), why) for c, why in result.skipped)
    assert set(reasons) == {"{'block': 0}", "{'offset': 1.0}"}
    assert "division by zero" in reasons["{'block': 0}"]
    assert reasons["{'offset': 1.0}"].startswith("wrong result")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "skipped config {'block': 0}" in logged and "skipped config {'offset': 1.0}: wrong result" in logged


def test_run_fails_clearly_when_no_config_works(fresh_tuning, a):
    with set_autotune_inputs(a), pytest.raises(AutotuneError) as e:
        _tuner([{"block": 0}, {"offset": 1.0}]).run(warmup=1, rep=5)
    msg = str(e.value)
    assert "no configuration compiled and passed the check" in msg
    assert "{'block': 0}: CompileError" in msg and "{'offset': 1.0}: wrong result" in msg


def test_configs_callable_and_caller_fixed_parameters(fresh_tuning, a):
    seen = []

    def configs(N, **kw):
        seen.append((N, kw))
        return [{"rounds": 1}, {"rounds": 3}]

    @tilewise.autotune(configs=configs, warmup=1, rep=5)
    @tilewise.jit(out_idx=-1, target="cpu")
    def tuned(N, block=64, rounds=1):
        return repeat_max(N, block, rounds)

    with set_autotune_inputs(a):
        # the caller gives the only tuned parameter: that kernel is compiled, nothing is timed
        direct = tuned.tune(N, rounds=3)
        assert direct.config == {"rounds": 3} and direct.latency is None
        assert tuned.tune(N).config in ({"rounds": 1}, {"rounds": 3})
    assert seen == [(N, {"rounds": 3}), (N, {})]


def test_bad_configs_are_rejected():
    def kernel(block=64, rounds=1):
        return repeat_max(N, block, rounds)

    with pytest.raises(ValueError, match="'tile'.*not a parameter of kernel"):
        AutoTuner.from_kernel(kernel, [{"tile": 4}]).run()
    with pytest.raises(ValueError, match="no configurations"):
        AutoTuner.from_kernel(kernel, []).run()
    with pytest.raises(TypeError, match="unknown autotuner argument"):
        AutoTuner.from_kernel(kernel, [{}]).set_compile_args(target="cpu", atl=1)


def test_dynamic_shapes_need_inputs_and_share_one_tuning(fresh_tuning, monkeypatch):
    monkeypatch.setenv("TILEWISE_AUTOTUNE_WORKERS", "1")

    def tuner():
        return AutoTuner.from_kernel(repeat_max_dynamic, [{"rounds": 3}, {"rounds": 1}]).set_compile_args(
            out_idx=-1, target="cpu", ref_prog=copy_ref)

    with pytest.raises(ValueError, match="dynamic shape.*set_autotune_inputs"):
        tuner().run()
    big = np.random.default_rng(1).random(5000).astype(np.float32)
    with set_autotune_inputs(big):
        first = tuner().run(warmup=1, rep=5)
    assert not first.cache_hit
    AutoTuner._memory.clear()
    small = np.arange(77, dtype=np.float32)
    with set_autotune_inputs(small):
        again = tuner().run(warmup=1, rep=5)
    assert again.cache_hit and again.config == first.config  # the input size is not part of the key
    np.testing.assert_array_equal(again.kernel(small), small)


@pytest.mark.skipif(gpu_present(), reason="a GPU is present")
def test_cuda_target_without_gpu_is_refused():
    tuner = AutoTuner.from_kernel(lambda rounds=1: repeat_max(N, 64, rounds), [{"rounds": 1}, {"rounds": 2}])
    with pytest.raises(AutotuneError, match="needs a CUDA GPU.*emulator's run time says nothing"):
        tuner.set_compile_args(out_idx=-1, target="cuda").run()

    @tilewise.autotune(configs=[{"rounds": 1}, {"rounds": 2}])
    @tilewise.jit(out_idx=-1, target="cuda -arch=sm_90a")
    def tuned(N, rounds=1):
        return repeat_max(N, 64, rounds)

    with pytest.raises(AutotuneError, match="sm_90a needs a CUDA GPU"):
        tuned(N)


def test_every_tuned_parameter_given_compiles_without_tuning_even_without_a_gpu(fresh_tuning):
    # TileLang skips tuning when the caller passes the tuned parameters; then no timing is
    # needed, so the emulator (no GPU) compiles and runs that one configuration
    @tilewise.autotune(configs=[{"block": 32, "rounds": 1}, {"block": 64, "rounds": 2}])
    @tilewise.jit(out_idx=-1, target="cuda", execution_backend="emulator")
    def tuned(N, block=64, rounds=1):
        return repeat_max(N, block, rounds)

    x = np.arange(100, dtype=np.float32)
    kernel = tuned(100, block=32, rounds=2)
    np.testing.assert_array_equal(kernel(x), x)
    assert tuned.tune(100, 32, 2).config == {"block": 32, "rounds": 2}
    with pytest.raises(AutotuneError, match="needs a CUDA GPU.*pass every tuned parameter \\(block, rounds\\)"):
        tuned(100, block=32)  # rounds is still tuned


# ---------------------------------------------------------------------------------------------
# parallel compilation


def test_configs_compile_in_worker_processes(tmp_path, monkeypatch, a):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))  # nothing compiled yet
    monkeypatch.setenv("TILEWISE_AUTOTUNE_WORKERS", "2")

    def no_compiling_here(*args, **kwargs):
        raise AssertionError("the parent process compiled a configuration")

    # only worker processes can build the libraries; this process loads them from the cache
    from tilewise.jit import target as jit_target

    monkeypatch.setattr(jit_target, "build_shared_library", no_compiling_here)
    configs = [{"rounds": 5}, {"rounds": 1}, {"rounds": 9}]
    with set_autotune_inputs(a):
        result = _tuner(configs).run(warmup=1, rep=5)
    assert result.skipped == [] and result.latency > 0
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(("autotune-", "pch-", "."))]) == 3


def test_compiler_failures_in_workers_are_reported(tmp_path, monkeypatch, a):
    monkeypatch.setenv("TILEWISE_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TILEWISE_AUTOTUNE_WORKERS", "2")
    monkeypatch.setenv("CXX", "/bin/false")  # read by the workers, which are new processes
    with set_autotune_inputs(a), pytest.raises(AutotuneError) as e:
        _tuner([{"rounds": 1}, {"rounds": 3}]).run(warmup=1, rep=5)
    assert str(e.value).count("did not compile") == 2


# ---------------------------------------------------------------------------------------------
# the cache

SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import tilewise
    import tilewise.language as T
    from tilewise.autotuner import set_autotune_inputs

    def repeat_max(N, block=64, rounds=1):
        @T.prim_func
        def main(A: T.Tensor((N,), "float32"), B: T.Tensor((N,), "float32")):
            with T.Kernel(T.ceildiv(N, block)) as bx:
                for i in T.Parallel(block):
                    acc = T.alloc_var("float32", init=-1e30)
                    for r in T.serial(rounds):
                        acc = T.max(acc, A[bx * block + i] + r * 0.0)
                    B[bx * block + i] = acc
        return main

    @tilewise.autotune(configs=[{"rounds": 5}, {"rounds": 1}, {"rounds": 3}], warmup=1, rep=10,
                       ref_prog=lambda A: A * 1)
    @tilewise.jit(out_idx=-1, target="cpu")
    def tuned(N, block=64, rounds=1):
        return repeat_max(N, block, rounds)

    if __name__ == "__main__":
        a = np.random.default_rng(0).random(4096).astype(np.float32)
        t = time.perf_counter()
        with set_autotune_inputs(a):
            result = tuned.tune(4096)
        seconds = time.perf_counter() - t
        assert np.array_equal(result.kernel(a), a)
        print(json.dumps({"config": result.config, "hit": result.cache_hit, "seconds": seconds}))
    """
)


def _spawn(script: Path, cache_dir: Path, **env_extra) -> subprocess.Popen:
    env = dict(os.environ, TILEWISE_CACHE_DIR=str(cache_dir), **env_extra)
    return subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"args {proc.args}\nstdout:\n{out}\nstderr:\n{err}"
    return json.loads(out.strip().splitlines()[-1])


def test_cache_survives_concurrent_writers_and_hits_in_another_process(tmp_path):
    script = tmp_path / "tune.py"
    script.write_text(SCRIPT)
    cache_dir = tmp_path / "cache"
    # two processes tune the same kernel at once into an empty cache
    first = [_finish(p) for p in [_spawn(script, cache_dir), _spawn(script, cache_dir)]]
    assert not any(r["hit"] for r in first)
    (entry,) = cache_dir.glob("autotune-*")  # the first to finish published it; the other kept it
    stored = json.loads((entry / "meta.json").read_text())
    assert stored["config"] in [repr(sorted(r["config"].items())) for r in first]
    assert not [p for p in cache_dir.iterdir() if p.name.startswith(".")]  # no half-written entries left
    # a third gets the tuned kernel from the cache: no compiler run (there is none), nothing timed
    third = _finish(_spawn(script, cache_dir, CXX="/bin/false"))
    assert third["hit"] and repr(sorted(third["config"].items())) == stored["config"]
    assert third["seconds"] < 1.0, third


def test_cache_misses_when_a_key_part_changes(fresh_tuning, a, monkeypatch):
    monkeypatch.setenv("TILEWISE_AUTOTUNE_WORKERS", "1")
    configs = [{"rounds": 3}, {"rounds": 1}]

    def run(**profile):
        AutoTuner._memory.clear()  # so that only the disk can answer
        return _tuner(configs, **profile).run(warmup=1, rep=5)

    with set_autotune_inputs(a):
        assert not run().cache_hit
        assert run().cache_hit
        assert not run(atol=0.5).cache_hit  # the reference check's tolerance
        assert not run(ref_prog=lambda A: A + 0).cache_hit  # the reference program
        assert not run(skip_check=True).cache_hit
        assert run().cache_hit
        monkeypatch.setenv("TILEWISE_AUTOTUNE_DISABLE_CACHE", "1")
        assert not run().cache_hit


def test_tuning_key_covers_every_part(monkeypatch):
    base = dict(static={"N": N, "dtype": "float32"}, target=Target("cpu"), backend="native", out_idx=[1],
                pass_configs=None, profile=ProfileArgs(ref_prog=copy_ref), warmup=1, rep=5)

    def key(n=N, configs=({"rounds": 1}, {"rounds": 2}), **changes):
        def factory(block=64, rounds=1):
            return repeat_max(n, block, rounds)

        b = bind_configs(factory, list(configs))
        build_funcs(factory, b.candidates)
        return result_cache.tuning_key(b.candidates, **{**base, **changes})

    k0 = key()
    assert key() == k0  # deterministic for a fresh parse of the same kernel
    variants = {
        "IR": key(n=N + 64),
        "configs": key(configs=({"rounds": 1}, {"rounds": 3})),
        "static args": key(static={"N": N, "dtype": "float16"}),
        "target": key(target=Target("cuda", "sm_80")),
        "backend": key(backend="emulator"),
        "out_idx": key(out_idx=[0]),
        "pass configs": key(pass_configs={"tir.disable_vectorize": True}),
        "ref_prog": key(profile=ProfileArgs(ref_prog=lambda A: A + 0)),
        "atol": key(profile=ProfileArgs(ref_prog=copy_ref, atol=0.5)),
        "rtol": key(profile=ProfileArgs(ref_prog=copy_ref, rtol=0.5)),
        "mismatch ratio": key(profile=ProfileArgs(ref_prog=copy_ref, max_mismatched_ratio=0.5)),
        "skip_check": key(profile=ProfileArgs(ref_prog=copy_ref, skip_check=True)),
        "timing": key(rep=50),
    }
    monkeypatch.setattr(cache, "__version__", "999.0")
    variants["version"] = key()
    assert k0 not in variants.values()
    assert len(set(variants.values())) == len(variants), variants



def crashy(N, mode=0):
    """B = A; mode 1 writes a gigabyte past B (SIGSEGV), mode 2 never finishes."""

    @T.prim_func
    def main(A: T.Tensor((N,), "float32"), B: T.Tensor((N,), "float32")):
        with T.Kernel(T.ceildiv(N, 64)) as bx:
            for i in T.Parallel(64):
                if bx * 64 + i < N:
                    B[bx * 64 + i + (mode % 2) * 1000000000] = A[bx * 64 + i]
            if mode == 2:
                while B[0] >= 0.0:
                    B[0] = B[0] + 1.0

    return main


def test_crashing_and_hanging_configs_are_skipped_and_not_cached(fresh_tuning, a):
    """A configuration that dies by a signal or hangs is run first in a probe process: the
    tuner's process survives, the reason is in the report, and a timeout (which may be the
    machine's fault) keeps the result out of the tuning cache."""
    def kernel(mode=0):
        return crashy(N, mode)

    tuner = AutoTuner.from_kernel(kernel, [{"mode": 1}, {"mode": 0}, {"mode": 2}]).set_compile_args(
        out_idx=-1, target="cpu", ref_prog=copy_ref, pass_configs={"tl.disable_safe_memory_legalize": True})
    with set_autotune_inputs(a):
        result = tuner.run(warmup=1, rep=5, timeout=5)
    assert result.config == {"mode": 0}
    reasons = dict((repr(c), why) for c, why in result.skipped)
    assert reasons["{'mode': 1}"].startswith("crashed with SIGSEGV"), reasons
    assert "did not finish within" in reasons["{'mode': 2}"], reasons
    assert not list(Path(os.environ["TILEWISE_CACHE_DIR"]).glob("autotune-*"))  # the timeout: not cached


def test_early_stop_times_a_clearly_slower_config_on_a_few_calls_only(fresh_tuning, a, monkeypatch):
    # TileLang's early_stop: after the fast configuration, the slow one's quick estimate is far
    # over early_stop_factor x the best, so it is not timed in full
    from tilewise.autotuner import measure

    calls = []
    real = measure.do_bench

    def recording(fn, **kw):
        calls.append("estimate" if kw.get("_n_repeat") == 3 else "full")
        return real(fn, **kw)

    monkeypatch.setattr(measure, "do_bench", recording)
    tuner = _tuner([{"rounds": 1}, {"rounds": SLOW}], ref_prog=None)
    with set_autotune_inputs(a):
        result = tuner.run(warmup=1, rep=5, early_stop=True, early_stop_factor=2.0)
    assert result.config == {"rounds": 1}
    assert calls == ["full", "estimate"]
    np.testing.assert_array_equal(result.kernel(a), a)

    with pytest.raises(ValueError, match="early_stop_factor must be >= 1.0"):
        _tuner([{"rounds": 1}]).run(early_stop=True, early_stop_factor=0.5)


def test_autotune_decorator_takes_early_stop_and_grouped_compile_warns(fresh_tuning, a, monkeypatch):
    from tilewise.autotuner import measure

    calls = []
    real = measure.do_bench
    monkeypatch.setattr(measure, "do_bench", lambda fn, **kw: calls.append(kw.get("_n_repeat")) or real(fn, **kw))

    @tilewise.autotune(configs=[{"rounds": 1}, {"rounds": SLOW}], warmup=1, rep=5, early_stop=True,
                       early_stop_factor=1.5)
    @tilewise.jit(out_idx=-1, target="cpu")
    def tuned(N, block=64, rounds=1):
        return repeat_max(N, block, rounds)

    with set_autotune_inputs(a):
        assert tuned(N).config == {"rounds": 1}
    assert calls[-1] == 3  # the slow configuration: the estimate only
    with pytest.warns(UserWarning, match=r"enable_grouped_compile=True\) has no effect"):
        AutoTuner._memory.clear()
        with set_autotune_inputs(a):
            _tuner([{"rounds": 1}], ref_prog=None).run(warmup=1, rep=5, enable_grouped_compile=True)


# ---------------------------------------------------------------------------------------------
# per-configuration pass configs (TileLang 0.1.15: "pass_configs" in a configuration)


def test_pass_configs_in_a_configuration_bind_and_deduplicate():
    def kernel(block=64, rounds=1):
        return repeat_max(N, block, rounds)

    configs = [{"rounds": 1, "pass_configs": {"tir.disable_vectorize": True}},
               {"rounds": 1, "pass_configs": {"tir.disable_vectorize": False}},
               {"rounds": 1, "pass_configs": {"tir.disable_vectorize": True}},  # a duplicate
               {"rounds": 1}]
    b = bind_configs(kernel, configs)
    assert [c.pass_configs for c in b.candidates] == [{"tir.disable_vectorize": True},
                                                     {"tir.disable_vectorize": False}, None]
    assert b.candidates[0].config == {"rounds": 1, "pass_configs": {"tir.disable_vectorize": True}}
    assert "pass_configs" not in b.candidates[0].kwargs and b.tuned == {"rounds"}
    with pytest.raises(TypeError, match="must be a dict"):
        bind_configs(kernel, [{"rounds": 1, "pass_configs": ["x"]}])


def test_each_configuration_compiles_with_its_own_pass_configs(fresh_tuning, a, monkeypatch, caplog):
    monkeypatch.setenv("TILEWISE_AUTOTUNE_WORKERS", "1")  # compiled in this process, where the spy is
    from tilewise.autotuner import parallel

    seen = []
    real = parallel.tw_compile

    def spy(func, **kw):
        seen.append(dict(kw.get("pass_configs") or {}))
        return real(func, **kw)

    monkeypatch.setattr(parallel, "tw_compile", spy)
    configs = [{"rounds": 1, "pass_configs": {"tir.disable_vectorize": True}},
               {"rounds": 2, "pass_configs": {"no.such_pass_config": 1}},  # refused: skipped, with the reason
               {"rounds": 3}]
    with set_autotune_inputs(a), caplog.at_level(logging.WARNING, logger="tilewise"):
        result = _tuner(configs, pass_configs={"tl.disable_safe_memory_legalize": True}).run(warmup=1, rep=3)
    # the tuner's pass configs under each configuration's own
    assert {"tl.disable_safe_memory_legalize": True, "tir.disable_vectorize": True} in seen
    assert {"tl.disable_safe_memory_legalize": True} in seen
    assert [e for c, e in result.skipped] and "no.such_pass_config" in result.skipped[0][1]
    assert result.config in ({"rounds": 1, "pass_configs": {"tir.disable_vectorize": True}}, {"rounds": 3})


def test_all_fixed_configuration_keeps_its_pass_configs(fresh_tuning, monkeypatch):
    from tilewise.autotuner import tuner as tuner_mod

    seen = []
    real = tuner_mod.tw_compile
    monkeypatch.setattr(tuner_mod, "tw_compile", lambda f, **kw: seen.append(kw.get("pass_configs")) or real(f, **kw))

    def kernel(block=64, rounds=1):
        return repeat_max(N, block, rounds)

    t = AutoTuner.from_kernel(kernel, [{"rounds": 2, "pass_configs": {"tir.disable_vectorize": True}}])
    t.set_compile_args(out_idx=-1, target="cpu").set_kernel_parameters((), {"rounds": 2})
    result = t.run()
    assert seen == [{"tir.disable_vectorize": True}] and result.kernel is not None


# ---------------------------------------------------------------------------------------------
# do_not_specialize and __return_kernel (TileLang 0.1.13's AutoTuneImpl)


def test_do_not_specialize_shares_one_tuning_and_recompiles_for_the_call(fresh_tuning):
    @tilewise.autotune(configs=[{"block": 32}, {"block": 64}], do_not_specialize=["offset"], warmup=1, rep=3)
    @tilewise.jit(out_idx=-1, target="cpu")
    def tuned(n, offset, block=64):
        return repeat_max(n, block, 1, offset)

    x = np.arange(256, dtype=np.float32)
    k1 = tuned(256, 1.0)
    assert len(tuned._tuner_cache) == 1
    k2 = tuned(256, offset=2.0)  # keyword or positional: the same key without `offset`
    assert len(tuned._tuner_cache) == 1
    assert k2 is not k1 and tuned.tune(256, 5.0).config == k1.config  # the tuned config, reused
    np.testing.assert_array_equal(k1(x), x + 1.0)
    np.testing.assert_array_equal(k2(x), x + 2.0)  # compiled for this call's offset, not the first one's
    tuned(128, 1.0)  # n is specialised: a tuning of its own
    assert len(tuned._tuner_cache) == 2
    assert tuned(256, 1.0, __return_kernel=True) is k1
    tuned._tuner_cache.clear()
    tuned(256, 3.0)
    assert len(tuned._tuner_cache) == 1


def test_do_not_specialize_must_name_parameters():
    with pytest.raises(ValueError, match="not parameters"):
        @tilewise.autotune(configs=[{"block": 32}], do_not_specialize=["nope"])
        @tilewise.jit(out_idx=-1, target="cpu")
        def tuned(n, block=64):
            return repeat_max(n, block)
