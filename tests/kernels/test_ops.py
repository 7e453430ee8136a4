"""The vidseg:: custom ops: dispatch, fake implementations, autograd, torch.export/compile, the ONNX lowering."""

from __future__ import annotations

import onnxruntime as ort
import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from vidseg.kernels import ops, reference

# torch.export's pytree emits a FutureWarning (LeafSpec) from inside torch 2.13; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:.*LeafSpec:FutureWarning")

OP_TARGETS = {"vidseg.warp.default", "vidseg.creff.default"}
# Operators of the ONNX standard domain that the reference compositions lower to (all in TensorRT's parser).
STANDARD_ONNX = {
    "Add", "Cast", "Concat", "Constant", "Div", "Expand", "Gather", "GridSample", "Mul", "Pad", "Range",
    "ReduceSum", "Reshape", "Shape", "Slice", "Softmax", "Sub", "Transpose", "Unsqueeze",
}  # fmt: skip


class _Fusion(torch.nn.Module):
    """AR-Seg's non-key step in miniature: warp the key features by block motion, then CReFF."""

    def __init__(self, convention: str = "arseg", window: int = 3):
        super().__init__()
        self.convention, self.window = convention, window

    def forward(self, key, lr, motion):
        warped = ops.warp(key, motion, self.convention)
        return ops.creff(lr, warped, warped, lr, self.window)


def _fusion_inputs():
    return torch.randn(1, 4, 6, 7), torch.randn(1, 4, 6, 7), torch.randn(1, 2, 3, 4) * 2


def _fusion_reference(key, lr, motion, convention="arseg", window=3):
    warped = reference.warp(key, motion, convention)
    return reference.creff(lr, warped, warped, lr, window)


def test_warp_on_cpu_is_the_reference_for_nchw_input():
    x, m = torch.randn(2, 5, 13, 29), torch.randn(2, 2, 4, 8) * 4
    for convention in reference.WARP_CONVENTIONS:
        assert torch.equal(ops.warp(x, m, convention), reference.warp(x, m, convention))
    q, k, v = torch.randn(3, 2, 5, 13, 29).unbind(0)
    # creff on CPU runs the tiled kernel (tests/kernels/test_cpu.py): the reference's sums in another order.
    torch.testing.assert_close(ops.creff(q, k, v, q), reference.creff(q, k, v, q), atol=1e-5, rtol=1e-5)
    assert ops.implementation("cpu", "warp") == "cpu" and ops.implementation("cpu", "creff") == "cpu"


def test_plain_eager_calls_equal_the_dispatched_ops():
    """Eager calls skip the dispatcher (see `ops._direct_kernel`) and must give exactly what it would."""
    key, lr, motion = _fusion_inputs()
    key, lr = (t.contiguous(memory_format=torch.channels_last) for t in (key, lr))
    with torch.inference_mode():
        warped = ops.warp(key, motion, "arseg")
        assert torch.equal(warped, torch.ops.vidseg.warp(key, motion, "arseg"))
        assert torch.equal(ops.creff(lr, warped, warped, lr, 3), torch.ops.vidseg.creff(lr, warped, warped, lr, 3))


def test_an_eager_run_does_not_import_the_compiler():
    """The custom op's wrapper imports torch._dynamo on its first call (~1.6 s of start-up on a CPU); an engine
    that never compiles must not pay it."""
    import subprocess
    import sys

    code = ("import sys, torch\nfrom vidseg.kernels import ops\n"
            "x = torch.randn(1, 4, 6, 7).contiguous(memory_format=torch.channels_last)\n"
            "with torch.inference_mode():\n"
            "    w = ops.warp(x, torch.randn(1, 2, 3, 4), 'arseg')\n"
            "    ops.creff(x, w, w, x, 3)\n"
            "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "channels_last"])
def test_outputs_have_the_layout_the_fake_promises(channels_last):
    # The fakes promise the input's memory format (x for warp, residual for creff); the real kernels must agree.
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(1, 3, 5, 6).contiguous(memory_format=fmt)
    m = torch.randn(1, 2, 5, 6)
    with FakeTensorMode() as mode:
        fake = torch.ops.vidseg.warp(mode.from_tensor(x), mode.from_tensor(m), "exact")
        fake_c = torch.ops.vidseg.creff(*(mode.from_tensor(x),) * 4, 3)
    for out in (fake, fake_c, torch.ops.vidseg.warp(x, m, "exact"), torch.ops.vidseg.creff(x, x, x, x, 3)):
        assert out.shape == x.shape and out.dtype == x.dtype
        assert out.is_contiguous(memory_format=fmt) and out.is_contiguous() != channels_last
    torch.library.opcheck(torch.ops.vidseg.warp.default, (x, m, "arseg"))
    torch.library.opcheck(torch.ops.vidseg.creff.default, (x, x, x, x, 3))


def test_the_entry_points_keep_a_channels_last_networks_layout():
    """warp/creff hand a channels_last network its layout back, straight from the CPU kernels (no copy), so the
    layers after them and the logits stay channels_last (no full-size transpose later)."""
    x = torch.randn(1, 4, 9, 11).to(memory_format=torch.channels_last)
    m = torch.randn(1, 2, 9, 11)
    for out in (ops.warp(x, m, "exact"), ops.creff(x, x, x, x, 3)):
        assert out.is_contiguous(memory_format=torch.channels_last) and not out.is_contiguous()
    torch.testing.assert_close(ops.creff(x, x, x, x, 3), reference.creff(x, x, x, x, 3), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ops.warp(x, m, "exact"), reference.warp(x, m, "exact"), atol=1e-5, rtol=1e-5)
    assert ops.warp(x.contiguous(), m).is_contiguous()


def test_cuda_kernels_call_the_triton_wrappers(kernels, device):
    # The functions registered for the CUDA dispatch key, called directly (CPU tensors run the interpreter).
    x, m = torch.randn(2, 5, 13, 29, device=device), torch.randn(2, 2, 4, 8, device=device) * 4
    torch.testing.assert_close(ops._warp_cuda(x, m, "gsvnet"), kernels.warp(x, m, "gsvnet"), rtol=0, atol=0)
    q, k, v, r = torch.randn(4, 2, 5, 13, 29, device=device).unbind(0)
    torch.testing.assert_close(ops._creff_cuda(q, k, v, r, 5), reference.creff(q, k, v, r, 5))


@pytest.mark.cuda
def test_ops_dispatch_to_triton_on_gpu(kernels):
    assert ops.implementation("cuda") == "triton"
    key, lr, motion = (t.cuda() for t in _fusion_inputs())
    out = _Fusion()(key, lr, motion)
    torch.testing.assert_close(out, _fusion_reference(key, lr, motion), atol=1e-5, rtol=1e-5)
    q, k, v = torch.randn(3, 1, 8, 9, 10, device="cuda").unbind(0)
    torch.testing.assert_close(ops.creff(q, k, v, q), kernels.creff(q, k, v, q), atol=0, rtol=0)


def test_gradients_flow_through_the_reference():
    key, lr, motion = _fusion_inputs()
    key.requires_grad_(True)
    lr.requires_grad_(True)
    _Fusion()(key, lr, motion).square().sum().backward()
    key2, lr2 = key.detach().clone().requires_grad_(True), lr.detach().clone().requires_grad_(True)
    _fusion_reference(key2, lr2, motion).square().sum().backward()
    assert torch.equal(key.grad, key2.grad) and torch.equal(lr.grad, lr2.grad)


def test_torch_export_keeps_the_custom_ops():
    args = _fusion_inputs()
    ep = torch.export.export(_Fusion().eval(), args)
    targets = {str(node.target) for node in ep.graph.nodes if node.op == "call_function"}
    assert targets == OP_TARGETS
    # The op runs creff's CPU kernel here: the reference's sums in another order (fp32 tolerance).
    torch.testing.assert_close(ep.module()(*args), _fusion_reference(*args), rtol=1e-5, atol=1e-5)


def test_torch_compile_sees_the_custom_ops():
    # fullgraph=True: no graph break around the ops; a recording backend keeps this to the Dynamo trace (an
    # Inductor compile of a small module takes ~40 s on 2 cores).
    graphs = []

    def record(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    args = _fusion_inputs()
    out = torch.compile(_Fusion(), backend=record, fullgraph=True)(*args)
    targets = {str(node.target) for gm in graphs for node in gm.graph.nodes if node.op == "call_function"}
    assert {"vidseg.warp", "vidseg.creff"} <= targets  # Dynamo records the op packets
    torch.testing.assert_close(out, _fusion_reference(*args), rtol=1e-5, atol=1e-5)  # CPU kernel: fp32 tolerance


def test_export_decompositions_lower_creff_over_contiguous_channels():
    # What every artifact is made from: no vidseg:: op left, and the program computes the reference.
    from vidseg.export.program import REFERENCE_DECOMPOSITIONS

    assert REFERENCE_DECOMPOSITIONS[torch.ops.vidseg.creff.default] is reference.creff_channels_last
    args = _fusion_inputs()
    program = torch.export.export(_Fusion().eval(), args).run_decompositions(REFERENCE_DECOMPOSITIONS)
    assert not [n for n in program.graph.nodes if getattr(n.target, "namespace", None) == "vidseg"]
    torch.testing.assert_close(program.module()(*args), _fusion_reference(*args), rtol=1e-5, atol=1e-5)


def _check_onnx(model_proto, args, expected):
    assert {node.domain for node in model_proto.graph.node} <= {"", "ai.onnx"}
    op_types = {node.op_type for node in model_proto.graph.node}
    assert "GridSample" in op_types and "Softmax" in op_types
    assert op_types <= STANDARD_ONNX, op_types - STANDARD_ONNX
    assert not model_proto.functions
    session = ort.InferenceSession(model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {inp.name: a.numpy() for inp, a in zip(session.get_inputs(), args, strict=True)}
    torch.testing.assert_close(torch.from_numpy(session.run(None, feed)[0]), expected, atol=1e-4, rtol=1e-4)


def test_onnx_dynamo_export_lowers_to_standard_ops():
    seen = []

    class AllConventions(torch.nn.Module):
        def forward(self, key, lr, motion):
            seen.append(torch.onnx.is_in_onnx_export())
            warped = sum(ops.warp(key, motion, convention) for convention in reference.WARP_CONVENTIONS)
            return ops.creff(lr, warped, warped, lr, 3)

    args = key, lr, motion = _fusion_inputs()
    program = torch.onnx.export(AllConventions().eval(), args, dynamo=True, verbose=False)
    assert seen and all(seen)  # the dynamo exporter sets the flag while it traces, so ops take the reference
    warped = sum(reference.warp(key, motion, convention) for convention in reference.WARP_CONVENTIONS)
    _check_onnx(program.model_proto, args, reference.creff(lr, warped, warped, lr, 3))
