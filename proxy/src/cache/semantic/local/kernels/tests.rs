use candle_core::{Device, Tensor};

use super::*;

fn grid(lo: f32, hi: f32, n: usize) -> impl Iterator<Item = f32> {
    (0..=n).map(move |i| lo + (hi - lo) * i as f32 / n as f32)
}

#[test]
fn erf_is_within_5e_7_of_the_exact_function() {
    for x in grid(-10.0, 10.0, 200_000) {
        let want = candle_core::cpu::erf::erf_f64(f64::from(x));
        let got = f64::from(erf(x));
        assert!((got - want).abs() < 5e-7, "erf({x}) = {got}, want {want}");
    }
}

#[test]
fn exp_is_within_1e_7_relative_and_0_below_its_range() {
    for x in grid(-87.0, 88.0, 200_000) {
        let want = f64::from(x).exp();
        let got = f64::from(exp(x));
        assert!(
            ((got - want) / want).abs() < 1e-7,
            "exp({x}) = {got}, want {want}"
        );
    }
    assert_eq!(exp(-100.0), 0.0);
    assert_eq!(exp(f32::NEG_INFINITY), 0.0);
}

fn tensor(v: &[f32], rows: usize) -> Tensor {
    Tensor::from_slice(v, (rows, v.len() / rows), &Device::Cpu).unwrap()
}

fn close(got: &Tensor, want: &Tensor) {
    let diff = (got - want)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff < 1e-5, "{diff}");
}

/// Values of a few hundred rows of 37 (not a multiple of the lanes).
fn values(rows: usize) -> Vec<f32> {
    (0..rows * 37)
        .map(|i| ((i * 7919 % 1000) as f32 / 100.0) - 5.0)
        .collect()
}

#[test]
fn the_fused_ops_match_candle_op_by_op() {
    let x = tensor(&values(300), 300);
    let bias: Vec<f32> = (0..37).map(|i| i as f32 / 37.0 - 0.5).collect();
    let b = Tensor::new(bias.as_slice(), &Device::Cpu).unwrap();

    let t = x.copy().unwrap();
    t.inplace_op1(&Bias(&bias, Identity)).unwrap();
    close(&t, &x.broadcast_add(&b).unwrap());

    let t = x.copy().unwrap();
    t.inplace_op1(&Bias(&bias, Gelu)).unwrap();
    close(&t, &x.broadcast_add(&b).unwrap().gelu_erf().unwrap());

    let t = x.copy().unwrap();
    t.inplace_op1(&Softmax).unwrap();
    close(&t, &candle_nn::ops::softmax_last_dim(&x).unwrap());

    let residual = tensor(
        &values(300)[..].iter().map(|v| v * 0.3).collect::<Vec<_>>(),
        300,
    );
    let weight: Vec<f32> = (0..37).map(|i| 1.0 + i as f32 / 100.0).collect();
    let beta: Vec<f32> = (0..37).map(|i| i as f32 / 50.0).collect();
    let t = x.copy().unwrap();
    let op = AddNorm {
        bias: &bias,
        weight: &weight,
        beta: &beta,
        eps: 1e-12,
    };
    t.inplace_op2(&residual, &op).unwrap();
    let want = candle_nn::ops::layer_norm(
        &((&x + &residual).unwrap().broadcast_add(&b).unwrap()),
        &Tensor::new(weight.as_slice(), &Device::Cpu).unwrap(),
        &Tensor::new(beta.as_slice(), &Device::Cpu).unwrap(),
        1e-12,
    )
    .unwrap();
    close(&t, &want);
}

#[test]
fn a_misshapen_tensor_is_an_error() {
    let x = tensor(&values(4), 4);
    assert!(x.inplace_op1(&Bias(&[0.0; 36], Identity)).is_err());
    assert!(x.t().unwrap().inplace_op1(&Softmax).is_err());
}
