/* What dlwp's native recurrent loops share: the element type, torch's hardsigmoid, a
   vectorisable tanh, and denormal flushing (see keras_gru.c for why these loops are in C). */
#ifndef DLWP_NATIVE_COMMON_H
#define DLWP_NATIVE_COMMON_H

#include <math.h>
#include <stdlib.h>

#ifndef REAL
#define REAL float
#endif
#ifndef NAME
#define NAME(x) x##_f32
#endif
/* Each loop is compiled twice: for n = 32, the units of the book's recurrent layers, whose loops
   then have trip counts known to the compiler (unrolled, accumulators kept in registers: the Jena
   GRU's forward and backward x2.3, the IMDB LSTM's x1.4, the same bits), and for any n. */
#define ALWAYS_INLINE inline __attribute__((always_inline))
#define BLOCK 16 /* samples per partial recurrent-kernel gradient */

/* Denormals: gradients that fade over hundreds of steps reach 1e-38 and below, where x86 takes
   ~100 cycles an operation (measured: the float backward of a Jena batch 166 ms with them, 18 ms
   flushed). Each call flushes them to zero on its own thread and restores the caller's mode, as
   TensorFlow's executor threads do for Keras. */
#if defined(__SSE__)
#include <xmmintrin.h>
#define FLUSH_DENORMALS unsigned int saved_csr = _mm_getcsr(); _mm_setcsr(saved_csr | 0x8040u) /* FTZ | DAZ */
#define RESTORE_DENORMALS _mm_setcsr(saved_csr)
#else
#define FLUSH_DENORMALS
#define RESTORE_DENORMALS
#endif

/* torch's hardsigmoid: clamp(x + 3, 0, 6) / 6 */
static inline REAL hsig(REAL x) {
    REAL y = x + (REAL)3;
    y = y < (REAL)0 ? (REAL)0 : y;
    y = y > (REAL)6 ? (REAL)6 : y;
    return y / (REAL)6;
}

#ifdef REAL_IS_DOUBLE
static inline REAL act_tanh(REAL x) { return tanh(x); }
#else
/* Eigen's rational approximation of tanh (generic_fast_tanh_float): within a few ulp, and
   vectorisable, which libm's tanhf is not without -ffast-math. */
static inline float act_tanh(float x) {
    const float clamp = 7.90531110763549805f;
    float a = x > clamp ? clamp : (x < -clamp ? -clamp : x);
    float x2 = a * a;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 + -8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    p = p * a;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    float y = p / q;
    return (x > -0.0004f && x < 0.0004f) ? x : y;
}
#endif

#endif
