//! Fidelity of the roofline model and the built-in profiles against sim-model.md §1.4.

use std::time::Duration;

use super::{BatchShape, Roofline, RooflineCoefficients};
use crate::profiles::{NAMES, by_name, gpu_by_name};

fn roofline(name: &str) -> Roofline {
    by_name(name).expect("built-in profile").roofline()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn decode_step(model: &Roofline, batch: usize, context: usize) -> f64 {
    let mut shape = BatchShape::default();
    (0..batch).for_each(|_| shape.add_decode(context));
    ms(model.step(&shape))
}

fn prefill_step(model: &Roofline, new: usize, cached: usize) -> f64 {
    let mut shape = BatchShape::default();
    shape.add_prefill(new, cached);
    ms(model.step(&shape))
}

fn within(got: f64, want: f64, tolerance: f64) -> bool {
    (got - want).abs() <= tolerance * want
}

/// Qwen3-32B TP2 H100, ISL = OSL = 1024, closed loop (AIC silicon sample): TPOT at
/// concurrency c is one step of c decodes at context 1536 plus a prefill chunk of
/// c·ISL/OSL = c new tokens on top of 512 computed.
#[test]
fn tpot_matches_silicon_qwen3_32b_tp2() {
    let model = roofline("qwen3-32b-h100-tp2");
    let rows = [
        (8, 16.5, 15.9),
        (16, 18.1, 17.4),
        (32, 21.3, 20.1),
        (64, 27.6, 26.1),
        (128, 40.4, 37.8),
    ];
    println!("   c  predicted  model(§1.4)  measured  err vs measured");
    let mut failures = Vec::new();
    for (c, table_model, measured) in rows {
        let mut shape = BatchShape::default();
        (0..c).for_each(|_| shape.add_decode(1536));
        shape.add_prefill(c, 512);
        let predicted = ms(model.step(&shape));
        let err = (predicted - measured) / measured * 100.0;
        println!("{c:>4} {predicted:>10.2} {table_model:>12.1} {measured:>9.1} {err:>+15.1}%");
        if !within(predicted, measured, 0.10) || !within(predicted, table_model, 0.05) {
            failures.push(c);
        }
    }
    assert!(failures.is_empty(), "TPOT off at c = {failures:?}");
}

#[test]
fn decode_steps_at_2k_context_match_the_profile_table() {
    let table = [
        ("qwen3-32b-h100-tp2", [15.0, 17.4, 24.9, 55.0]),
        ("llama-3.1-8b-h100-tp1", [7.0, 9.3, 16.9, 47.0]),
        ("qwen3-8b-h100-tp1", [7.1, 9.7, 18.2, 52.0]),
    ];
    let mut failures = Vec::new();
    for (name, want) in table {
        let model = roofline(name);
        for (batch, want) in [1, 16, 64, 256].into_iter().zip(want) {
            let got = decode_step(&model, batch, 2048);
            println!("{name} B={batch}: {got:.2} ms (table {want})");
            if !within(got, want, 0.10) {
                failures.push((name, batch, got));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
    // AIC / TRT-LLM measured 7.5–8 ms for Llama-3.1-8B TP1 at batch 8.
    let batch8 = decode_step(&roofline("llama-3.1-8b-h100-tp1"), 8, 2048);
    assert!(within(batch8, 7.75, 0.10), "8B batch 8: {batch8:.2} ms");
}

#[test]
fn prefill_throughput_matches_the_profile_table() {
    let qwen = roofline("qwen3-32b-h100-tp2");
    let mut failures = Vec::new();
    for (name, want) in [
        ("qwen3-32b-h100-tp2", 11_300.0),
        ("llama-3.1-8b-h100-tp1", 25_000.0),
        ("qwen3-8b-h100-tp1", 25_000.0),
    ] {
        let model = roofline(name);
        let at_1k = 1024.0 / prefill_step(&model, 1024, 0) * 1e3;
        let at_7k = 7200.0 / prefill_step(&model, 7200, 0) * 1e3;
        println!("{name}: {at_1k:.0} tok/s @1k (table {want}), {at_7k:.0} tok/s @7.2k");
        if !within(at_1k, want, 0.15) {
            failures.push((name, at_1k));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
    let cached = prefill_step(&qwen, 1200, 6000);
    println!("qwen3-32b: 1.2k new on 6k cached: {cached:.1} ms (table 121)");
    assert!(within(cached, 121.0, 0.15), "{cached:.1} ms");
    // Cached context costs attention: the same chunk on nothing is cheaper.
    assert!(prefill_step(&qwen, 1200, 0) < cached);
}

#[test]
fn kv_capacities_are_measured_or_plausible() {
    let qwen = by_name("qwen3-32b-h100-tp2").expect("profile");
    assert_eq!(qwen.kv_capacity_tokens(), 307_328);
    assert_eq!(qwen.kv_bytes_per_token_per_gpu(), 131_072.0);
    let llama70 = by_name("llama-3.1-70b-h100-tp4").expect("profile");
    assert_eq!(llama70.kv_capacity_tokens(), 461_376);
    assert_eq!(llama70.kv_bytes_per_token_per_gpu(), 81_920.0);
    // The activation reserve reproduces both measurements within 1%.
    assert!(within(
        qwen.formula_kv_capacity_tokens() as f64,
        307_328.0,
        0.01
    ));
    assert!(within(
        llama70.formula_kv_capacity_tokens() as f64,
        461_376.0,
        0.01
    ));
    let estimates = [
        ("llama-3.1-8b-h100-tp1", 440_000.0, 131_072.0),
        ("qwen3-8b-h100-tp1", 390_000.0, 147_456.0),
        ("r1-distill-qwen-7b", 0.0, 57_344.0),
        ("llama-3.1-8b-a100-tp1", 440_000.0, 131_072.0),
    ];
    for (name, estimate, kappa) in estimates {
        let profile = by_name(name).expect("profile");
        let tokens = profile.kv_capacity_tokens();
        println!("{name}: {tokens} KV tokens per pod");
        assert_eq!(profile.kv_bytes_per_token_per_gpu(), kappa, "{name}");
        assert!(
            estimate == 0.0 || within(tokens as f64, estimate, 0.05),
            "{name}"
        );
        assert!((100_000..2_000_000).contains(&tokens), "{name}: {tokens}");
    }
}

#[test]
fn weights_from_the_architecture_match_the_table() {
    for name in NAMES {
        let profile = by_name(name).expect("every listed name resolves");
        let computed = profile.arch.computed_weight_bytes(2.0);
        println!(
            "{name}: {:.1} GB/GPU computed, {:.1} GB/GPU table",
            computed / f64::from(profile.tp) / 1e9,
            profile.weight_bytes_per_gpu() / 1e9
        );
        assert!(within(computed, profile.arch.weight_bytes, 0.02), "{name}");
    }
    assert!(by_name("gpt-5").is_none());
    assert!(gpu_by_name("tpu-v5").is_none());
    let a100 = gpu_by_name("a100-sxm").expect("gpu");
    assert_eq!(a100.mfu_prefill, 0.38);
    let on_a100 = by_name("llama-3.1-8b-a100-tp1")
        .expect("profile")
        .roofline();
    assert_eq!(on_a100.coefficients().mfu_prefill, 0.38);
}

#[test]
fn steps_grow_with_every_dimension_and_never_panic() {
    let model = roofline("llama-3.1-70b-h100-tp4");
    let empty = model.step(&BatchShape::default());
    assert!(empty > Duration::ZERO);
    let base = decode_step(&model, 16, 2048);
    assert!(decode_step(&model, 32, 2048) > base);
    assert!(decode_step(&model, 16, 4096) > base);
    assert!(prefill_step(&model, 2048, 0) > prefill_step(&model, 1024, 0));
    // Nonsense coefficients still give a Duration, not a panic.
    let profile = by_name("qwen3-8b-h100-tp1").expect("profile");
    let broken = RooflineCoefficients {
        mfu_prefill: 0.0,
        per_step_us: f64::NAN,
        ..RooflineCoefficients::default()
    };
    let _ = Roofline::new(profile.clone(), broken).step(&BatchShape::default());
    let negative = RooflineCoefficients {
        per_step_us: -1e9,
        ..RooflineCoefficients::default()
    };
    let shape = BatchShape::default();
    assert_eq!(
        Roofline::new(profile, negative).step(&shape),
        Duration::ZERO
    );
}

#[test]
fn roofline_serialises_for_the_manifest() {
    let json = serde_json::to_value(roofline("qwen3-32b-h100-tp2")).expect("serialisable");
    assert_eq!(json["coefficients"]["per_layer_us"], 32.1);
    assert_eq!(json["profile"]["tp"], 2);
    assert_eq!(json["profile"]["gpu"]["name"], "h100-sxm");
    let partial: RooflineCoefficients =
        serde_json::from_str(r#"{"mfu_prefill": 0.55}"#).expect("partial override");
    assert_eq!(partial.mfu_prefill, 0.55);
    assert_eq!(partial.weights, 1.36);
}
