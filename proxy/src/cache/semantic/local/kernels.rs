//! The encoder's element-wise steps, fused and done in place on the output
//! of the matrix product before them (as ONNX Runtime's BiasGelu and
//! SkipLayerNormalization do): adding a bias, erf GELU, softmax, and
//! bias + residual + layer norm. candle does each as its own pass over a
//! fresh tensor, with scalar `erf` and `exp`; here each is one pass, with
//! branch-free `erf` and `exp` that the compiler vectorises for the CPU's
//! widest instructions (chosen at run time through `pulp`).
//!
//! Both approximations are within 5e-7 (absolute, `erf`) and 1e-7
//! (relative, `exp`) of the exact functions; the unit tests hold them to it.

use std::f32::consts::FRAC_1_SQRT_2;

use candle_core::{bail, CpuStorage, InplaceOp1, InplaceOp2, Layout, Result};
use pulp::{Arch, Simd, WithSimd};

/// Adds `bias` to every row, then applies the activation `A`.
pub(super) struct Bias<'a, A>(pub &'a [f32], pub A);

/// What follows the bias: nothing, or GELU.
pub(super) trait Activation: Copy {
    const NAME: &'static str;
    fn apply(self, x: f32) -> f32;
}

/// No activation (the query, key and value projections).
#[derive(Clone, Copy)]
pub(super) struct Identity;

/// GELU, the erf form.
#[derive(Clone, Copy)]
pub(super) struct Gelu;

/// Softmax over each row.
pub(super) struct Softmax;

/// `x = layer_norm(x + bias + residual) * weight + beta`, row by row; the
/// residual is the op's second tensor.
pub(super) struct AddNorm<'a> {
    pub bias: &'a [f32],
    pub weight: &'a [f32],
    pub beta: &'a [f32],
    pub eps: f32,
}

fn rows<'s>(s: &'s mut CpuStorage, l: &Layout, width: usize, op: &str) -> Result<&'s mut [f32]> {
    let CpuStorage::F32(v) = s else {
        bail!("{op}: f32 only")
    };
    let Some((start, end)) = l.contiguous_offsets() else {
        bail!("{op}: the tensor is not contiguous")
    };
    if width == 0 || !(end - start).is_multiple_of(width) || l.dims().last() != Some(&width) {
        bail!("{op}: rows of {width} expected, got {:?}", l.dims())
    }
    Ok(&mut v[start..end])
}

// === impl Bias, Softmax, AddNorm ===

impl Activation for Identity {
    const NAME: &'static str = "bias";

    #[inline(always)]
    fn apply(self, x: f32) -> f32 {
        x
    }
}

impl Activation for Gelu {
    const NAME: &'static str = "bias-gelu";

    #[inline(always)]
    fn apply(self, x: f32) -> f32 {
        0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))
    }
}

impl<A: Activation> InplaceOp1 for Bias<'_, A> {
    fn name(&self) -> &'static str {
        A::NAME
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let x = rows(s, l, self.0.len(), self.name())?;
        Arch::new().dispatch(BiasRows {
            x,
            bias: self.0,
            act: self.1,
        });
        Ok(())
    }
}

impl InplaceOp1 for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }

    fn cpu_fwd(&self, s: &mut CpuStorage, l: &Layout) -> Result<()> {
        let width = l.dims().last().copied().unwrap_or(0);
        let x = rows(s, l, width, self.name())?;
        Arch::new().dispatch(SoftmaxRows { x, width });
        Ok(())
    }
}

impl InplaceOp2 for AddNorm<'_> {
    fn name(&self) -> &'static str {
        "add-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let width = self.bias.len();
        if self.weight.len() != width || self.beta.len() != width {
            bail!("add-norm: bias, weight and beta differ in length")
        }
        let (CpuStorage::F32(r), Some((a, b))) = (s2, l2.contiguous_offsets()) else {
            bail!("add-norm: the residual is not a contiguous f32 tensor")
        };
        let residual = &r[a..b];
        let x = rows(s1, l1, width, self.name())?;
        if residual.len() != x.len() {
            bail!("add-norm: the residual's shape differs")
        }
        Arch::new().dispatch(AddNormRows {
            x,
            residual,
            op: self,
        });
        Ok(())
    }
}

// === the loops (inlined into pulp's target-feature context) ===

struct BiasRows<'a, A> {
    x: &'a mut [f32],
    bias: &'a [f32],
    act: A,
}

impl<A: Activation> WithSimd for BiasRows<'_, A> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        for row in self.x.chunks_exact_mut(self.bias.len()) {
            for (v, b) in row.iter_mut().zip(self.bias) {
                *v = self.act.apply(*v + b);
            }
        }
    }
}

struct SoftmaxRows<'a> {
    x: &'a mut [f32],
    width: usize,
}

impl WithSimd for SoftmaxRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        for row in self.x.chunks_exact_mut(self.width) {
            let max = max(row);
            for v in row.iter_mut() {
                *v = exp(*v - max);
            }
            let scale = 1.0 / sum(row);
            for v in row.iter_mut() {
                *v *= scale;
            }
        }
    }
}

struct AddNormRows<'a> {
    x: &'a mut [f32],
    residual: &'a [f32],
    op: &'a AddNorm<'a>,
}

impl WithSimd for AddNormRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) {
        let op = self.op;
        let width = op.bias.len();
        let n = width as f32;
        for (row, res) in self
            .x
            .chunks_exact_mut(width)
            .zip(self.residual.chunks_exact(width))
        {
            for ((v, r), b) in row.iter_mut().zip(res).zip(op.bias) {
                *v += r + b;
            }
            let mean = sum(row) / n;
            for v in row.iter_mut() {
                *v -= mean;
            }
            let var = sum_squares(row) / n;
            let inv = 1.0 / (var + op.eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(op.weight).zip(op.beta) {
                *v = *v * inv * w + b;
            }
        }
    }
}

// === the arithmetic ===

/// Lanes for sums: enough independent accumulators for the compiler to
/// keep them in vector registers (float addition is not reassociated
/// otherwise).
const LANES: usize = 16;

/// Folds `xs` with `step` into `LANES` accumulators, then those (and the
/// tail) into one with `merge`.
#[inline(always)]
fn fold_lanes(
    xs: &[f32],
    init: f32,
    step: impl Fn(f32, f32) -> f32,
    merge: impl Fn(f32, f32) -> f32,
) -> f32 {
    let mut acc = [init; LANES];
    let mut chunks = xs.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = step(*a, *v);
        }
    }
    let tail = chunks.remainder().iter().fold(init, |a, &v| step(a, v));
    acc.iter().fold(tail, |a, &b| merge(a, b))
}

#[inline(always)]
fn sum(xs: &[f32]) -> f32 {
    fold_lanes(xs, 0.0, |a, v| a + v, |a, b| a + b)
}

#[inline(always)]
fn sum_squares(xs: &[f32]) -> f32 {
    fold_lanes(xs, 0.0, |a, v| a + v * v, |a, b| a + b)
}

#[inline(always)]
fn max(xs: &[f32]) -> f32 {
    fold_lanes(xs, f32::NEG_INFINITY, f32::max, f32::max)
}

/// erf as an odd rational function of `x` on [-4, 4] (erf is ±1 in f32
/// beyond), the approximation Eigen and XLA use.
#[inline(always)]
pub(super) fn erf(x: f32) -> f32 {
    const ALPHA: [f32; 7] = [
        -2.726_142_4e-10,
        2.770_681_5e-8,
        -2.101_024e-6,
        -5.692_506_2e-5,
        -7.349_906_4e-4,
        -2.954_6e-3,
        -1.609_603_3e-2,
    ];
    const BETA: [f32; 5] = [
        -1.456_607_15e-5,
        -2.133_740_5e-4,
        -1.682_827e-3,
        -7.373_329_3e-3,
        -1.426_473_9e-2,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = ALPHA[1..].iter().fold(ALPHA[0], |p, &c| p.mul_add(x2, c));
    let q = BETA[1..].iter().fold(BETA[0], |q, &c| q.mul_add(x2, c));
    x * p / q
}

/// e^x for x ≤ 88 (softmax's arguments are ≤ 0): x = k·ln 2 + r with
/// |r| ≤ ln 2 / 2, a degree-6 polynomial for e^r (Cephes), and 2^k put in
/// the exponent bits. Below -87.3 the result is 0.
#[inline(always)]
pub(super) fn exp(x: f32) -> f32 {
    const P: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        0.166_666_65,
        0.5,
    ];
    let under = x < -87.336_55;
    let x = x.clamp(-87.336_55, 88.0);
    let k = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = k.mul_add(-0.693_359_4, x);
    let r = k.mul_add(2.121_944_4e-4, r);
    let p = P[1..].iter().fold(P[0], |p, &c| p.mul_add(r, c));
    let e = p.mul_add(r * r, r) + 1.0;
    // 2^k without a float-to-int conversion (which does not vectorise):
    // adding 2^23 + 127 puts k + 127 in the low mantissa bits, and the
    // shift moves them into the exponent.
    let scale = f32::from_bits((k + 8_388_735.0).to_bits() << 23);
    if under {
        0.0
    } else {
        e * scale
    }
}

#[cfg(test)]
mod tests;
