//! PNG plots (900×600): TTFT and throughput against offered QPS per policy, and per-pod
//! queue and KV usage over time. Without a font they are drawn without any text.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

use super::summary::PolicySummary;
use super::{PolicyRuns, ReportError, sanitize};
use crate::results::RunResult;

type DrawResult = Result<(), Box<dyn std::error::Error>>;
const SIZE: (u32, u32) = (900, 600);

/// Draws every plot into `dir` (created if missing).
pub(crate) fn draw_all(
    dir: &Path,
    summaries: &[(String, PolicySummary)],
    policies: &[PolicyRuns<'_>],
    text: bool,
) -> Result<(), ReportError> {
    std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
        path: dir.into(),
        source,
    })?;
    let curves = |f: fn(&PolicySummary) -> Vec<(f64, f64)>| -> Vec<(String, Vec<(f64, f64)>)> {
        summaries.iter().map(|(n, s)| (n.clone(), f(s))).collect()
    };
    let p50 = curves(|s| points(s, |m| m.ttft_ms.as_ref().map(|q| q.p50)));
    let p90 = curves(|s| points(s, |m| m.ttft_ms.as_ref().map(|q| q.p90)));
    let tput = curves(|s| points(s, |m| m.output_tokens_per_s));
    let path = dir.join("ttft_vs_qps.png");
    guard(&path, ttft_plot(&path, &p50, &p90, text))?;
    let path = dir.join("throughput_vs_qps.png");
    guard(
        &path,
        qps_plot(
            &path,
            &tput,
            "Output tokens/s vs offered QPS",
            "output tokens/s",
            text,
        ),
    )?;
    if summaries.iter().any(|(_, s)| s.classes.is_some()) {
        let path = dir.join("class_ttft_p99.png");
        guard(&path, class_plot(&path, summaries, text))?;
    }
    for p in policies {
        let Some(run) = p.runs.first() else { continue };
        let name = sanitize(&p.name);
        let path = dir.join(format!("{name}_queue.png"));
        let title = format!("{}: waiting requests per pod", p.name);
        guard(
            &path,
            pod_plot(
                &path,
                run,
                |s| f64::from(s.waiting),
                &title,
                "waiting",
                text,
            ),
        )?;
        let path = dir.join(format!("{name}_kv.png"));
        let title = format!("{}: KV-cache usage per pod", p.name);
        guard(
            &path,
            pod_plot(
                &path,
                run,
                |s| s.kv_usage * 100.0,
                &title,
                "KV usage (%)",
                text,
            ),
        )?;
    }
    Ok(())
}

fn guard(path: &Path, r: DrawResult) -> Result<(), ReportError> {
    r.map_err(|e| ReportError::Plot {
        path: PathBuf::from(path),
        message: e.to_string(),
    })
}

/// (offered QPS, value) over the measured stages that have both, by QPS.
fn points(
    s: &PolicySummary,
    f: fn(&super::metrics::StageMetrics) -> Option<f64>,
) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, f64)> = s
        .stages
        .iter()
        .filter(|st| !st.warmup)
        .filter_map(|st| Some((st.rate?, f(&st.metrics)?)))
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    v
}

/// (min, max) of the values, widened so the range is never empty.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
        (l.min(v), h.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi > lo {
        (lo, hi)
    } else {
        (lo - 0.5, hi + 0.5)
    }
}

fn area(path: &Path) -> Result<DrawingArea<BitMapBackend<'_>, Shift>, Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root)
}

fn builder<'a, 'b>(
    root: &'a DrawingArea<BitMapBackend<'b>, Shift>,
    title: &str,
    text: bool,
) -> ChartBuilder<'a, 'b, BitMapBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.margin(20);
    if text {
        b.caption(title, ("sans-serif", 24))
            .x_label_area_size(50)
            .y_label_area_size(80);
    }
    b
}

fn ttft_plot(
    path: &Path,
    p50: &[(String, Vec<(f64, f64)>)],
    p90: &[(String, Vec<(f64, f64)>)],
    text: bool,
) -> DrawResult {
    let root = area(path)?;
    let all = || p50.iter().chain(p90).flat_map(|(_, v)| v.iter());
    let (x0, x1) = bounds(all().map(|p| p.0));
    let (y0, y1) = bounds(all().map(|p| p.1).filter(|&y| y > 0.0));
    let (y0, y1) = (y0.max(1e-3) / 1.5, y1.max(1e-3) * 1.5);
    let mut chart = builder(&root, "TTFT vs offered QPS (p50 dashed, p90 solid)", text)
        .build_cartesian_2d(x0..x1, (y0..y1).log_scale())?;
    mesh(&mut chart, "offered QPS (req/s)", "TTFT (ms)", text)?;
    for (i, ((name, lo), (_, hi))) in p50.iter().zip(p90).enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let keep =
            |v: &Vec<(f64, f64)>| v.iter().copied().filter(|p| p.1 > 0.0).collect::<Vec<_>>();
        chart.draw_series(DashedLineSeries::new(keep(lo), 8, 6, color.stroke_width(2)))?;
        let series = chart.draw_series(LineSeries::new(keep(hi), color.stroke_width(2)))?;
        if text {
            series.label(name.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    legend(&mut chart, text)?;
    root.present()?;
    Ok(())
}

fn qps_plot(
    path: &Path,
    curves: &[(String, Vec<(f64, f64)>)],
    title: &str,
    y: &str,
    text: bool,
) -> DrawResult {
    let root = area(path)?;
    let (x0, x1) = bounds(curves.iter().flat_map(|(_, v)| v.iter().map(|p| p.0)));
    let (_, y1) = bounds(curves.iter().flat_map(|(_, v)| v.iter().map(|p| p.1)));
    let mut chart = builder(&root, title, text).build_cartesian_2d(x0..x1, 0.0..y1 * 1.1)?;
    mesh(&mut chart, "offered QPS (req/s)", y, text)?;
    for (i, (name, pts)) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let series =
            chart.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?;
        if text {
            series.label(name.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    legend(&mut chart, text)?;
    root.present()?;
    Ok(())
}

/// TTFT p99 per class (x) and policy (bars), log scale: what flow control does to each
/// band.
fn class_plot(path: &Path, summaries: &[(String, PolicySummary)], text: bool) -> DrawResult {
    let root = area(path)?;
    let names: Vec<String> = summaries
        .iter()
        .find_map(|(_, s)| s.classes.as_ref())
        .map(|classes| classes.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    // (class index, policy index, TTFT p99 ms) of every class that completed requests.
    let bars: Vec<(usize, usize, f64)> = summaries
        .iter()
        .enumerate()
        .flat_map(|(p, (_, s))| {
            s.classes
                .iter()
                .flatten()
                .enumerate()
                .filter_map(move |(c, class)| {
                    let p99 = class.metrics.ttft_ms.as_ref()?.p99;
                    (p99 > 0.0).then_some((c, p, p99))
                })
        })
        .collect();
    let (y0, y1) = bounds(bars.iter().map(|b| b.2));
    // Headroom above the tallest bar for the legend.
    let (y0, y1) = (y0.max(1e-3) / 2.0, y1.max(1e-3) * 40.0);
    let classes = names.len().max(1) as f64;
    let mut chart = builder(&root, "TTFT p99 per class and policy", text)
        .build_cartesian_2d(0.0..classes, (y0..y1).log_scale())?;
    let x_desc = format!(
        "class, left to right: {} (bars: policies)",
        names.join(", ")
    );
    let mut mesh = chart.configure_mesh();
    mesh.x_labels(0).disable_x_mesh();
    if text {
        mesh.x_desc(x_desc).y_desc("TTFT p99 (ms)");
    } else {
        mesh.y_labels(0);
    }
    mesh.draw()?;
    let width = 0.8 / summaries.len().max(1) as f64;
    for (p, (name, _)) in summaries.iter().enumerate() {
        let color = Palette99::pick(p).to_rgba();
        let rects = bars.iter().filter(|b| b.1 == p).map(|&(c, _, v)| {
            let x0 = c as f64 + 0.1 + width * p as f64;
            Rectangle::new([(x0, y0), (x0 + width * 0.9, v)], color.filled())
        });
        let series = chart.draw_series(rects)?;
        if text {
            series.label(name.as_str()).legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled())
            });
        }
    }
    legend(&mut chart, text)?;
    root.present()?;
    Ok(())
}

fn pod_plot(
    path: &Path,
    run: &RunResult,
    f: fn(&crate::results::PodSample) -> f64,
    title: &str,
    y: &str,
    text: bool,
) -> DrawResult {
    let root = area(path)?;
    let (x0, x1) = bounds(run.pods.iter().map(|s| s.time_s));
    let (_, y1) = bounds(run.pods.iter().map(f));
    let mut chart =
        builder(&root, title, text).build_cartesian_2d(x0..x1, 0.0..y1.max(1.0) * 1.05)?;
    mesh(&mut chart, "time (s)", y, text)?;
    let pods = super::metrics::pod_count(run);
    for pod in 0..pods as u32 {
        let color = Palette99::pick(pod as usize).to_rgba();
        let pts = run
            .pods
            .iter()
            .filter(|s| s.pod == pod)
            .map(|s| (s.time_s, f(s)));
        let series = chart.draw_series(LineSeries::new(pts, color.stroke_width(1)))?;
        if text {
            series.label(format!("pod {pod}")).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    legend(&mut chart, text)?;
    root.present()?;
    Ok(())
}

fn mesh<X, Y>(
    chart: &mut ChartContext<'_, BitMapBackend<'_>, Cartesian2d<X, Y>>,
    x: &str,
    y: &str,
    text: bool,
) -> DrawResult
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut m = chart.configure_mesh();
    if text {
        m.x_desc(x).y_desc(y);
    } else {
        m.x_labels(0).y_labels(0);
    }
    m.draw()?;
    Ok(())
}

fn legend<'a, X, Y>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<X, Y>>,
    text: bool,
) -> DrawResult
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    if text {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    Ok(())
}
