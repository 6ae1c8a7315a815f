/* Keras 2.0.8's LSTM over whole sequences, forward and hand-written backward through time, in C
(the GRU's file, keras_gru.c, says why, and how the batch is split between threads).

Equations (gates ordered i, f, o, c as dlwp's fused step orders them, the hard-sigmoid gates'
weights pre-scaled by 1.2 so Keras' hard_sigmoid is torch's hardsigmoid; m the Gal
recurrent-dropout masks in the same order, or 1; act tanh or relu):
    i, f, o = hardsigmoid(xp_ifo + (h * m_ifo) @ U_ifo);  g = act(xp_c + (h * m_c) @ U_c)
    c' = f * c + i * g;  h' = o * act(c')

Measured against a variant that advances 4 samples together so that each load of the recurrent
kernel serves all four (2026-12-02, 2 cores, batch 128): no faster at 32 units (forward 26 ms
against 46 ms, backward 51 against 48 over 500 steps), and at 128 units both lose to torch's
batched matmuls, so this simpler form stays, and native_rnn.MAX_KERNEL_FLOATS keeps big kernels
in torch. */

#include "common.h"

/* The forward of samples [b0, b1). xp [B, T, 4n]: input projections (bias in); u [n, 4n]: the
   recurrent kernel; m [4, B, n] or NULL. Writes hs [B, T, n] (the outputs), gates [B, T, 4n]
   (i, f, o, g after their activations), cs [B, T, n] (the cell states). */
static ALWAYS_INLINE void lstm_forward_body(int B, int T, int n, int b0, int b1, const REAL *restrict xp,
        const REAL *restrict u, const REAL *restrict m, int relu, REAL *restrict hs, REAL *restrict gates,
        REAL *restrict cs, REAL *restrict unused) {
    (void)unused;
    FLUSH_DENORMALS;
    const int w = 4 * n;
    REAL *zeros = calloc(n, sizeof(REAL));
    REAL *masked = malloc(sizeof(REAL) * 4 * (size_t)n);
    for (int b = b0; b < b1; b++) {
        const REAL *h = zeros, *c = zeros;
        for (int t = 0; t < T; t++) {
            const size_t bt = (size_t)b * T + t;
            const REAL *x = xp + bt * w;
            REAL *a = gates + bt * w, *c_next = cs + bt * n, *h_next = hs + bt * n;
            for (int j = 0; j < w; j++) a[j] = x[j];
            if (m) {
                for (int k = 0; k < n; k++) {
                    for (int q = 0; q < 4; q++) masked[q] = h[k] * m[((size_t)q * B + b) * n + k];
                    const REAL *uk = u + (size_t)k * w;
                    for (int q = 0; q < 4; q++)
                        for (int j = 0; j < n; j++) a[q * n + j] += masked[q] * uk[q * n + j];
                }
            } else {
                for (int k = 0; k < n; k++) {
                    const REAL hk = h[k];
                    const REAL *uk = u + (size_t)k * w;
                    for (int j = 0; j < w; j++) a[j] += hk * uk[j];
                }
            }
            for (int j = 0; j < 3 * n; j++) a[j] = hsig(a[j]);
            for (int j = 3 * n; j < w; j++) a[j] = relu ? (a[j] > 0 ? a[j] : (REAL)0) : act_tanh(a[j]);
            for (int j = 0; j < n; j++) {
                const REAL cn = a[n + j] * c[j] + a[j] * a[3 * n + j];
                c_next[j] = cn;
                h_next[j] = a[2 * n + j] * (relu ? (cn > 0 ? cn : (REAL)0) : act_tanh(cn));
            }
            h = h_next;
            c = c_next;
        }
    }
    free(zeros);
    free(masked);
    RESTORE_DENORMALS;
}

void NAME(lstm_forward)(int B, int T, int n, int b0, int b1, const REAL *restrict xp, const REAL *restrict u,
                        const REAL *restrict m, int relu, REAL *restrict hs, REAL *restrict gates,
                        REAL *restrict cs, REAL *restrict unused) {
    if (n == 32)
        lstm_forward_body(B, T, 32, b0, b1, xp, u, m, relu, hs, gates, cs, unused);
    else
        lstm_forward_body(B, T, n, b0, b1, xp, u, m, relu, hs, gates, cs, unused);
}

/* The backward of samples [b0, b1) (b0 a multiple of BLOCK). grad [B, T, n]: d loss / d hs; hs,
   gates, cs, m: as the forward wrote them; ut [4n, n]: the recurrent kernel transposed. Writes
   dxp [B, T, 4n] and, per block of BLOCK samples, its part of d loss / d u into du [blocks, n, 4n]
   (zeroed by the caller). */
static ALWAYS_INLINE void lstm_backward_body(int B, int T, int n, int b0, int b1, const REAL *restrict grad,
        const REAL *restrict hs, const REAL *restrict gates, const REAL *restrict cs,
        const REAL *restrict unused, const REAL *restrict m, int relu, const REAL *restrict ut,
        REAL *restrict dxp, REAL *restrict du) {
    (void)unused;
    FLUSH_DENORMALS;
    const int w = 4 * n;
    REAL *buf = calloc(11 * (size_t)n, sizeof(REAL));
    REAL *dh = buf, *dc = buf + n, *zeros = buf + 2 * n, *acc = buf + 3 * n, *hm = buf + 7 * n; /* 4n each */
    for (int b = b0; b < b1; b++) {
        REAL *du_b = du + (size_t)(b / BLOCK) * n * w;
        for (int k = 0; k < n; k++) dh[k] = dc[k] = 0;
        for (int t = T - 1; t >= 0; t--) {
            const size_t bt = (size_t)b * T + t;
            const REAL *h = t > 0 ? hs + (bt - 1) * n : zeros, *c_prev = t > 0 ? cs + (bt - 1) * n : zeros;
            const REAL *a = gates + bt * w, *c = cs + bt * n, *g = grad + bt * n;
            REAL *da = dxp + bt * w;
            for (int j = 0; j < n; j++) {
                const REAL i = a[j], f = a[n + j], o = a[2 * n + j], cand = a[3 * n + j];
                const REAL d = dh[j] + g[j];
                const REAL tc = relu ? (c[j] > 0 ? c[j] : (REAL)0) : act_tanh(c[j]);
                const REAL tc_slope = relu ? (REAL)(c[j] > 0) : 1 - tc * tc;
                const REAL dct = dc[j] + d * o * tc_slope;
                da[j] = dct * cand * ((i > 0 && i < 1) ? (REAL)1 / 6 : (REAL)0);
                da[n + j] = dct * c_prev[j] * ((f > 0 && f < 1) ? (REAL)1 / 6 : (REAL)0);
                da[2 * n + j] = d * tc * ((o > 0 && o < 1) ? (REAL)1 / 6 : (REAL)0);
                da[3 * n + j] = dct * i * (relu ? (REAL)(cand > 0) : 1 - cand * cand);
                dc[j] = dct * f;
            }
            for (int k = 0; k < 4 * n; k++) acc[k] = 0; /* acc[q n + k] = (U_q da_q)[k] */
            for (int q = 0; q < 4; q++)
                for (int j = 0; j < n; j++) {
                    const REAL s = da[q * n + j];
                    const REAL *uj = ut + (size_t)(q * n + j) * n;
                    REAL *out = acc + (size_t)q * n;
                    for (int k = 0; k < n; k++) out[k] += s * uj[k];
                }
            for (int q = 0; q < 4; q++) /* h as each gate saw it */
                for (int k = 0; k < n; k++) hm[q * n + k] = m ? h[k] * m[((size_t)q * B + b) * n + k] : h[k];
            for (int k = 0; k < n; k++) {
                REAL s = 0;
                for (int q = 0; q < 4; q++) s += m ? acc[q * n + k] * m[((size_t)q * B + b) * n + k] : acc[q * n + k];
                dh[k] = s;
            }
            for (int k = 0; k < n; k++) { /* du += [h m_q]^T da_q */
                REAL *row = du_b + (size_t)k * w;
                for (int q = 0; q < 4; q++) {
                    const REAL s = hm[q * n + k];
                    for (int j = 0; j < n; j++) row[q * n + j] += s * da[q * n + j];
                }
            }
        }
    }
    free(buf);
    RESTORE_DENORMALS;
}

void NAME(lstm_backward)(int B, int T, int n, int b0, int b1, const REAL *restrict grad, const REAL *restrict hs,
                         const REAL *restrict gates, const REAL *restrict cs, const REAL *restrict unused,
                         const REAL *restrict m, int relu, const REAL *restrict ut, REAL *restrict dxp,
                         REAL *restrict du) {
    if (n == 32)
        lstm_backward_body(B, T, 32, b0, b1, grad, hs, gates, cs, unused, m, relu, ut, dxp, du);
    else
        lstm_backward_body(B, T, n, b0, b1, grad, hs, gates, cs, unused, m, relu, ut, dxp, du);
}
