"""Keras 2.0.8's GRU over a whole sequence as one autograd function with a hand-written BPTT.

Why: with Gal dropout each gate multiplies its own masked copy of the state, so autograd records
a dozen small ops a step and replays them one by one; on 2 CPU cores that costs x1.5 the time of
this function (bench/jena_windows.py, docs/PERFORMANCE.md). Here the forward loop
runs without a graph and keeps only what the backward needs; the backward loop is ~10 ops a step;
everything that does not depend on the recurrence (gate derivatives, the recurrent kernel's
gradient) is computed for all steps at once. Without dropout, autograd through the fused step
(`dlwp.model.fused_loop`) is as fast, so it is kept there.

Equations (Keras 2.0.8, weights pre-scaled so that hard_sigmoid(x) = torch's hardsigmoid(1.2 x)):
    z, r = hardsigmoid(xp_zr + (h * m_zr) @ U_zr)          (m: Gal recurrent-dropout masks, or 1)
    hh   = act(xp_h + (r * h * m_h) @ U_h)                  (act: tanh or relu)
    h'   = z * h + (1 - z) * hh
`tests/test_chapter6.py` checks values and gradients against autograd through the step function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class KerasGRUScan(torch.autograd.Function):
    """`(xp [B, T, 3n], u [n, 3n], masks [3, B, n] | None, relu) -> h for every step [B, T, n]`.

    `xp` holds the input projections of every step (bias included); `u` the recurrent kernel, both
    already scaled for the hard-sigmoid gates. `masks` are the recurrent-dropout masks (z, r, h).

    Inside, every per-step tensor is transposed, `[units, batch]`: a gate is then a contiguous
    block of rows. A strided operand (a column slice of `[batch, 3n]`) costs TensorIterator's slow
    path, 5-8x a contiguous op at these sizes, and small ops are the whole cost here."""

    @staticmethod
    def forward(ctx, xp: torch.Tensor, u: torch.Tensor, masks: torch.Tensor | None, relu: bool) -> torch.Tensor:
        batch, steps, width = xp.shape
        n = width // 3
        xpt = xp.permute(1, 2, 0)  # [T, 3n, B]
        xp_zr, xp_h = xpt[:, : 2 * n].contiguous(), xpt[:, 2 * n :].contiguous()
        ut = u.t()  # [3n, n]: row blocks z, r, h
        ut_zr, ut_h = ut[: 2 * n].contiguous(), ut[2 * n :].contiguous()
        m = None if masks is None else masks.transpose(1, 2).contiguous()  # [3, n, B]
        hs = xp.new_empty(steps + 1, n, batch)
        hs[0].zero_()
        zr = xp.new_empty(steps, 2 * n, batch)  # gate values: rows z then r
        hh = xp.new_empty(steps, n, batch)  # candidate states
        rh = xp.new_empty(steps, n, batch)  # r * h (* m_h): what U_h multiplies
        for t in range(steps):
            h = hs[t]
            if m is None:
                torch.addmm(xp_zr[t], ut_zr, h, out=zr[t])
            else:
                torch.addmm(xp_zr[t, :n], ut_zr[:n], h * m[0], out=zr[t, :n])
                torch.addmm(xp_zr[t, n:], ut_zr[n:], h * m[1], out=zr[t, n:])
            F.hardsigmoid(zr[t], inplace=True)
            torch.mul(zr[t, n:], h, out=rh[t])
            if m is not None:
                rh[t].mul_(m[2])
            torch.addmm(xp_h[t], ut_h, rh[t], out=hh[t])
            hh[t].relu_() if relu else hh[t].tanh_()
            torch.lerp(hh[t], h, zr[t, :n], out=hs[t + 1])  # z h + (1 - z) hh
        ctx.save_for_backward(u, m, hs, zr, hh, rh)
        ctx.relu = relu
        return hs[1:].permute(2, 0, 1)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        u, m, hs, zr, hh, rh = ctx.saved_tensors
        steps, n, batch = hh.shape
        g = grad_out.permute(1, 2, 0).contiguous()  # [T, n, B]
        z, r, h_prev = zr[:, :n], zr[:, n:], hs[:-1]
        # every factor that does not depend on the incoming gradient, for all steps at once
        gate_slope = ((zr > 0) & (zr < 1)).to(zr.dtype) / 6.0  # hardsigmoid' (torch's, from its output)
        act_slope = (hh > 0).to(hh.dtype) if ctx.relu else 1 - hh * hh
        to_a_h = (1 - z) * act_slope  # d h' / d (pre-activation of hh)
        to_a_z = (h_prev - hh) * gate_slope[:, :n]  # d h' / d (pre-activation of z)
        to_a_r = h_prev * gate_slope[:, n:]  # d (r h) / d (pre-activation of r), times d(rh)
        r_m = r.contiguous()
        if m is not None:
            to_a_r = to_a_r * m[2]
            r_m = r_m * m[2]
        u_zr, u_h = u[:, : 2 * n].contiguous(), u[:, 2 * n :].contiguous()
        da_zr = hs.new_empty(steps, 2 * n, batch)  # d pre-activations of z, r = d xp
        da_h = hs.new_empty(steps, n, batch)
        dh = hs.new_zeros(n, batch)
        for t in range(steps - 1, -1, -1):
            dh.add_(g[t])
            torch.mul(dh, to_a_h[t], out=da_h[t])
            drh = u_h @ da_h[t]
            torch.mul(dh, to_a_z[t], out=da_zr[t, :n])
            torch.mul(drh, to_a_r[t], out=da_zr[t, n:])
            dh.mul_(z[t]).addcmul_(drh, r_m[t])
            if m is None:
                dh.addmm_(u_zr, da_zr[t])
            else:
                dh.addcmul_(u_zr[:, :n] @ da_zr[t, :n], m[0]).addcmul_(u_zr[:, n:] @ da_zr[t, n:], m[1])
        h_z, h_r = (h_prev, h_prev) if m is None else (h_prev * m[0], h_prev * m[1])
        du = torch.cat([torch.einsum("tib,tjb->ij", h_z, da_zr[:, :n]), torch.einsum("tib,tjb->ij", h_r, da_zr[:, n:]),
                        torch.einsum("tib,tjb->ij", rh, da_h)], dim=1)  # fmt: skip
        return torch.cat([da_zr, da_h], dim=1).permute(2, 0, 1), du, None, None
