"""The FlashAttention example's kernels as a differentiable torch function
(`FlashAttentionKernels.attention()`, built on tilewise.torch.autograd_function): a small model
(qkv projection, attention, output projection) trains for a few steps on the CPU with tilewise's
forward and backward kernels, and matches the same model using torch's
scaled_dot_product_attention step by step: losses, gradients of every parameter, updated weights."""
from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest

torch = pytest.importorskip("torch")

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "flash_attention" / "example_mha_bwd_bshd.py"
B, S, H, D = 2, 64, 2, 32


def _example():
    spec = importlib.util.spec_from_file_location("tw_example_mha_bwd_training", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # torch.compile looks functions' modules up by name
    spec.loader.exec_module(module)
    return module


class AttentionModel(torch.nn.Module):
    """One attention layer and a linear head; `attention(q, k, v)` takes and returns bshd."""

    def __init__(self, attention):
        super().__init__()
        self.qkv = torch.nn.Linear(H * D, 3 * H * D)
        self.proj = torch.nn.Linear(H * D, H * D)
        self.attention = attention

    def forward(self, x):
        q, k, v = self.qkv(x).view(B, S, 3, H, D).unbind(2)
        o = self.attention(q, k, v)
        return self.proj(o.reshape(B, S, H * D))


def sdpa_bshd(causal: bool):
    def attention(q, k, v):
        o = torch.nn.functional.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal)
        return o.transpose(1, 2)
    return attention


def _train(model, steps, x, target):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    losses, grads = [], []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), target)
        loss.backward()
        losses.append(loss.item())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        opt.step()
    return losses, grads


@pytest.mark.parametrize("causal", [False, True])
def test_trains_like_sdpa(causal):
    ex = _example()
    kernels = ex.FlashAttentionKernels(B, H, S, D, causal, target="cpu", dtype="float32")
    attention = kernels.attention()
    torch.manual_seed(0)
    ours = AttentionModel(attention)
    ref = AttentionModel(sdpa_bshd(causal))
    ref.load_state_dict(ours.state_dict())
    x = torch.randn(B, S, H * D)
    target = torch.randn(B, S, H * D)
    l1, g1 = _train(ours, 3, x, target)
    l2, g2 = _train(ref, 3, x, target)
    assert l1 == pytest.approx(l2, rel=1e-4)
    assert l1[-1] < l1[0]  # it learns
    for step, (a, b) in enumerate(zip(g1, g2)):
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=1e-3, atol=1e-5, msg=lambda m, n=name, s=step: f"{n} step {s}: {m}")
    for (n, p), (_, q) in zip(ours.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=lambda m, n=n: f"{n}: {m}")


def test_gradients_of_the_function_and_its_lse_stays_internal():
    ex = _example()
    kernels = ex.FlashAttentionKernels(B, H, S, D, False, target="cpu", dtype="float32")
    attention = kernels.attention()
    torch.manual_seed(1)
    q, k, v = (torch.randn(B, S, H, D, requires_grad=True) for _ in range(3))
    o = attention(q, k, v)
    assert isinstance(o, torch.Tensor) and o.requires_grad  # only O is returned, not the lse
    do = torch.randn_like(o)
    got = torch.autograd.grad(o, (q, k, v), do)
    want = torch.autograd.grad(sdpa_bshd(False)(q, k, v), (q, k, v), do)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, rtol=1e-3, atol=1e-4)


def test_training_step_compiles_fullgraph():
    """The model under torch.compile(fullgraph=True): the custom operators' fake implementations
    let the forward be traced with no graph break, and AOTAutograd traces the backward kernels."""
    ex = _example()
    kernels = ex.FlashAttentionKernels(B, H, S, D, True, target="cpu", dtype="float32")
    torch.manual_seed(2)
    model = AttentionModel(kernels.attention())
    ref = AttentionModel(sdpa_bshd(True))
    ref.load_state_dict(model.state_dict())
    x, target = torch.randn(B, S, H * D), torch.randn(B, S, H * D)

    compiled = torch.compile(model, fullgraph=True)  # inductor; AOTAutograd traces the backward kernels too
    loss = torch.nn.functional.mse_loss(compiled(x), target)
    loss.backward()
    loss_ref = torch.nn.functional.mse_loss(ref(x), target)
    loss_ref.backward()
    torch.testing.assert_close(loss, loss_ref, rtol=1e-4, atol=1e-6)
    for (n, p), (_, r) in zip(model.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p.grad, r.grad, rtol=1e-3, atol=1e-5, msg=lambda m, n=n: f"{n}: {m}")


def test_flash_attention_ops_pass_opcheck():
    """The four registered operators of the example (the backward one mutating dQ) pass every
    torch.library.opcheck test: schema, autograd registration, fake tensors, AOT dispatch."""
    ex = _example()
    kernels = ex.FlashAttentionKernels(B, H, S, D, False, target="cpu", dtype="float32")
    import tilewise.torch as twt

    fwd, prep, bwd, post = (twt.custom_op(k) for k in (kernels.fwd, kernels.prep, kernels.bwd, kernels.post))
    assert "Tensor(a6!) dQ" in str(bwd._opoverload._schema)
    torch.manual_seed(3)
    q, k, v, do = (torch.randn(B, S, H, D) for _ in range(4))
    o, lse = fwd(q, k, v)
    delta = prep(o, do)
    for op, args in ((fwd, (q, k, v)), (prep, (o, do)), (bwd, (q, k, v, do, lse, delta, torch.zeros(B, S, H, D))),
                     (post, (torch.randn(B, S, H, D),))):
        torch.library.opcheck(op, args)
