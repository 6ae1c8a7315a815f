/* Keras 2.0.8's GRU over whole sequences, forward and hand-written backward through time, in C.

Why: a GRU(32) step over 128 windows is ~10 tiny torch kernels on 2 CPU cores, and their dispatch,
not the ~0.4 M multiply-adds, sets the time (docs/PERFORMANCE.md). Here one sample's state stays
in L1 for all its steps; every array keeps the layer's own [batch, time, features] layout, so no
transposes either. The caller (dlwp/model/native_rnn.py) gives each thread a range of whole
blocks of BLOCK samples; samples are independent and each block sums its own recurrent-kernel
gradient, so results do not depend on the number of threads.

Equations (as dlwp/model/gru_scan.py; weights pre-scaled so Keras' hard_sigmoid is torch's
hardsigmoid(1.2 x), m the Gal recurrent-dropout masks or 1):
    z, r = hardsigmoid(xp_zr + (h * m_zr) @ U_zr);  hh = act(xp_h + (r * h * m_h) @ U_h)
    h'   = hh + z * (h - hh)
Compiled twice: REAL = float, and REAL = double for the gradient checks. */

#include "common.h"

/* The forward of samples [b0, b1). xp [B, T, 3n]: input projections (bias in); u [n, 3n]: the
   recurrent kernel; m [3, B, n] or NULL. Writes hs [B, T, n] (the outputs), zr [B, T, 2n] (gate
   values), hh [B, T, n] (candidates), rh [B, T, n] (r * h * m_h). */
static ALWAYS_INLINE void gru_forward_body(int B, int T, int n, int b0, int b1, const REAL *restrict xp,
        const REAL *restrict u, const REAL *restrict m, int relu, REAL *restrict hs, REAL *restrict zr,
        REAL *restrict hh, REAL *restrict rh) {
    FLUSH_DENORMALS;
    const int w = 3 * n;
    REAL *zeros = calloc(n, sizeof(REAL));
    for (int b = b0; b < b1; b++) {
        const REAL *mz = m ? m + (size_t)b * n : NULL, *mr = m ? m + ((size_t)B + b) * n : NULL;
        const REAL *mh = m ? m + (2 * (size_t)B + b) * n : NULL;
        const REAL *h = zeros;
        for (int t = 0; t < T; t++) {
            const size_t bt = (size_t)b * T + t;
            const REAL *x = xp + bt * w;
            REAL *g = zr + bt * 2 * n, *c = hh + bt * n, *rh_t = rh + bt * n, *h_next = hs + bt * n;
            for (int j = 0; j < 2 * n; j++) g[j] = x[j];
            for (int k = 0; k < n; k++) {
                const REAL az = m ? h[k] * mz[k] : h[k], ar = m ? h[k] * mr[k] : h[k];
                const REAL *uk = u + (size_t)k * w;
                for (int j = 0; j < n; j++) g[j] += az * uk[j];
                for (int j = 0; j < n; j++) g[n + j] += ar * uk[n + j];
            }
            for (int j = 0; j < 2 * n; j++) g[j] = hsig(g[j]);
            for (int k = 0; k < n; k++) rh_t[k] = g[n + k] * h[k] * (m ? mh[k] : (REAL)1);
            for (int j = 0; j < n; j++) c[j] = x[2 * n + j];
            for (int k = 0; k < n; k++) {
                const REAL a = rh_t[k];
                const REAL *uk = u + (size_t)k * w + 2 * n;
                for (int j = 0; j < n; j++) c[j] += a * uk[j];
            }
            for (int j = 0; j < n; j++) {
                REAL a = relu ? (c[j] > 0 ? c[j] : (REAL)0) : act_tanh(c[j]);
                c[j] = a;
                h_next[j] = a + g[j] * (h[j] - a); /* torch.lerp(hh, h, z) */
            }
            h = h_next;
        }
    }
    free(zeros);
    RESTORE_DENORMALS;
}

void NAME(gru_forward)(int B, int T, int n, int b0, int b1, const REAL *restrict xp, const REAL *restrict u,
                       const REAL *restrict m, int relu, REAL *restrict hs, REAL *restrict zr, REAL *restrict hh,
                       REAL *restrict rh) {
    if (n == 32)
        gru_forward_body(B, T, 32, b0, b1, xp, u, m, relu, hs, zr, hh, rh);
    else
        gru_forward_body(B, T, n, b0, b1, xp, u, m, relu, hs, zr, hh, rh);
}

/* The backward of samples [b0, b1) (b0 a multiple of BLOCK). grad [B, T, n]: d loss / d hs;
   hs, zr, hh, rh, m: as the forward wrote them; ut [3n, n]: the recurrent kernel transposed.
   Writes dxp [B, T, 3n] (= the gradients of the pre-activations) and, for each block of BLOCK
   samples, its part of d loss / d u into du [B / BLOCK rounded up, n, 3n] (zeroed by the caller). */
static ALWAYS_INLINE void gru_backward_body(int B, int T, int n, int b0, int b1, const REAL *restrict grad,
        const REAL *restrict hs, const REAL *restrict zr, const REAL *restrict hh, const REAL *restrict rh,
        const REAL *restrict m, int relu, const REAL *restrict ut, REAL *restrict dxp, REAL *restrict du) {
    FLUSH_DENORMALS;
    const int w = 3 * n;
    REAL *buf = calloc(6 * (size_t)n, sizeof(REAL));
    REAL *dh = buf, *drh = buf + n, *next = buf + 2 * n, *hz = buf + 3 * n, *hr = buf + 4 * n, *zeros = buf + 5 * n;
    for (int b = b0; b < b1; b++) {
        const REAL *mz = m ? m + (size_t)b * n : NULL, *mr = m ? m + ((size_t)B + b) * n : NULL;
        const REAL *mh = m ? m + (2 * (size_t)B + b) * n : NULL;
        REAL *du_b = du + (size_t)(b / BLOCK) * n * w;
        for (int k = 0; k < n; k++) dh[k] = 0;
        for (int t = T - 1; t >= 0; t--) {
            const size_t bt = (size_t)b * T + t;
            const REAL *h = t > 0 ? hs + (bt - 1) * n : zeros;
            const REAL *z = zr + bt * 2 * n, *r = z + n, *c = hh + bt * n, *rh_t = rh + bt * n, *g = grad + bt * n;
            REAL *da_z = dxp + bt * w, *da_r = da_z + n, *da_h = da_z + 2 * n;
            for (int j = 0; j < n; j++) {
                const REAL d = dh[j] + g[j];
                const REAL act_slope = relu ? (REAL)(c[j] > 0) : 1 - c[j] * c[j];
                const REAL z_slope = (z[j] > 0 && z[j] < 1) ? (REAL)1 / 6 : (REAL)0;
                dh[j] = d;
                da_h[j] = d * (1 - z[j]) * act_slope;
                da_z[j] = d * (h[j] - c[j]) * z_slope;
                drh[j] = 0;
            }
            for (int j = 0; j < n; j++) { /* drh = U_h da_h */
                const REAL a = da_h[j];
                const REAL *uj = ut + (size_t)(2 * n + j) * n;
                for (int k = 0; k < n; k++) drh[k] += a * uj[k];
            }
            for (int k = 0; k < n; k++) {
                const REAL r_m = m ? r[k] * mh[k] : r[k];
                const REAL r_slope = (r[k] > 0 && r[k] < 1) ? (REAL)1 / 6 : (REAL)0;
                da_r[k] = drh[k] * h[k] * (m ? mh[k] : (REAL)1) * r_slope;
                next[k] = dh[k] * z[k] + drh[k] * r_m;
                hz[k] = 0;
                hr[k] = 0;
            }
            for (int j = 0; j < n; j++) { /* U_z da_z and U_r da_r */
                const REAL az = da_z[j], ar = da_r[j];
                const REAL *uz = ut + (size_t)j * n, *ur = ut + (size_t)(n + j) * n;
                for (int k = 0; k < n; k++) {
                    hz[k] += az * uz[k];
                    hr[k] += ar * ur[k];
                }
            }
            for (int k = 0; k < n; k++) dh[k] = next[k] + (m ? hz[k] * mz[k] + hr[k] * mr[k] : hz[k] + hr[k]);
            for (int k = 0; k < n; k++) { /* du += [h m_z, h m_r, rh]^T [da_z, da_r, da_h] */
                const REAL az = m ? h[k] * mz[k] : h[k], ar = m ? h[k] * mr[k] : h[k], ah = rh_t[k];
                REAL *row = du_b + (size_t)k * w;
                for (int j = 0; j < n; j++) row[j] += az * da_z[j];
                for (int j = 0; j < n; j++) row[n + j] += ar * da_r[j];
                for (int j = 0; j < n; j++) row[2 * n + j] += ah * da_h[j];
            }
        }
    }
    free(buf);
    RESTORE_DENORMALS;
}

void NAME(gru_backward)(int B, int T, int n, int b0, int b1, const REAL *restrict grad, const REAL *restrict hs,
                        const REAL *restrict zr, const REAL *restrict hh, const REAL *restrict rh,
                        const REAL *restrict m, int relu, const REAL *restrict ut, REAL *restrict dxp,
                        REAL *restrict du) {
    if (n == 32)
        gru_backward_body(B, T, 32, b0, b1, grad, hs, zr, hh, rh, m, relu, ut, dxp, du);
    else
        gru_backward_body(B, T, n, b0, b1, grad, hs, zr, hh, rh, m, relu, ut, dxp, du);
}
