//! A drill's timeline as SVG (plotters, SVG backend only): the etcd lab's drill and the
//! Kubernetes lab's draw the same picture from a [`Timeline`].

use plotters::prelude::*;

use crate::drill::{HolderChange, Sample};

/// What the picture shows, borrowed from a drill's report.
pub struct Timeline<'a> {
    pub title: String,
    /// One lane per node (index = `HolderChange::holders` entries).
    pub nodes: &'a [String],
    pub duration_ms: f64,
    pub holders: &'a [HolderChange],
    /// Every write through the VIP.
    pub samples: &'a [Sample],
    pub faults: Vec<FaultWindow>,
}

/// A fault from made to undone (ms since the drill started), labelled `<cycle> <fault>@<node>`.
pub struct FaultWindow {
    pub made_ms: f64,
    pub undone_ms: f64,
    pub label: String,
}

impl FaultWindow {
    pub fn new(cycle: usize, fault: &str, node: &str, made_ms: f64, undone_ms: f64) -> Self {
        FaultWindow {
            made_ms,
            undone_ms,
            label: format!("{cycle} {fault}@{node}"),
        }
    }
}

const HOLD: RGBColor = RGBColor(52, 101, 164);
const DUAL: RGBColor = RGBColor(204, 0, 0);
const OK: RGBColor = RGBColor(78, 154, 6);
const FAULT: RGBColor = RGBColor(245, 121, 0);

/// Buckets of the success-rate line: at least 100 ms, at most ~2000 buckets.
fn bucket_s(duration_s: f64) -> f64 {
    (duration_s / 2000.0).max(0.1)
}

/// (bucket start s, acknowledged share) for every bucket with at least one write.
pub fn success_rate(r: &Timeline, bucket: f64) -> Vec<(f64, f64)> {
    let n = ((r.duration_ms / 1000.0) / bucket).ceil() as usize + 1;
    let mut ok = vec![0u32; n];
    let mut all = vec![0u32; n];
    for s in r.samples {
        let b = ((s.end_ms / 1000.0) / bucket) as usize;
        if b < n {
            all[b] += 1;
            ok[b] += u32::from(s.ok);
        }
    }
    (0..n)
        .filter(|&b| all[b] > 0)
        .map(|b| (b as f64 * bucket, f64::from(ok[b]) / f64::from(all[b])))
        .collect()
}

/// Intervals (start s, end s) during which `node` held the VIP, and those with 2+ holders.
/// (start s, end s).
type Span = (f64, f64);

fn intervals(r: &Timeline, end_s: f64) -> (Vec<Vec<Span>>, Vec<Span>) {
    let mut per = vec![Vec::new(); r.nodes.len()];
    let mut dual = Vec::new();
    for (i, c) in r.holders.iter().enumerate() {
        let a = c.t_ms as f64 / 1000.0;
        let b = r
            .holders
            .get(i + 1)
            .map_or(end_s, |n| n.t_ms as f64 / 1000.0);
        for &h in &c.holders {
            if let Some(v) = per.get_mut(h) {
                v.push((a, b));
            }
        }
        if c.holders.len() >= 2 {
            dual.push((a, b));
        }
    }
    (per, dual)
}

pub fn draw(r: &Timeline) -> String {
    let mut out = String::new();
    if let Err(e) = draw_into(r, &mut out) {
        return format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\"><text x=\"10\" y=\"20\">drawing failed: {e}</text></svg>\n"
        );
    }
    out
}

fn draw_into(r: &Timeline, out: &mut String) -> Result<(), Box<dyn std::error::Error>> {
    let end_s = (r.duration_ms / 1000.0).max(1.0);
    let n = r.nodes.len();
    let width = ((end_s * 40.0) as u32).clamp(1000, 8000);
    let lanes = n as f64 + 1.0;
    let root = SVGBackend::with_string(out, (width, 200 + 60 * n as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(&r.title, ("sans-serif", 18))
        .margin(12)
        .margin_left(80)
        .margin_bottom(30)
        .x_label_area_size(50)
        .build_cartesian_2d(0f64..end_s, 0f64..lanes + 0.55)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("time since the drill started (s)")
        .x_labels(((end_s / 2.0) as usize).clamp(5, 120))
        .x_label_formatter(&|x| format!("{x:.0}"))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;

    // Lanes: node i at the top (y = n - i), writes at the bottom (y = 0).
    let lane = |i: usize| (n - i) as f64;
    // Fault windows with their names (three rows of labels so neighbours do not overlap).
    for (k, f) in r.faults.iter().enumerate() {
        let (a, b) = (f.made_ms / 1000.0, f.undone_ms / 1000.0);
        chart.draw_series(std::iter::once(Rectangle::new(
            [(a, 0.0), (b.max(a + 0.02), lanes)],
            FAULT.mix(0.25).filled(),
        )))?;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(a, 0.0), (a, lanes)],
            FAULT.stroke_width(1),
        )))?;
        let y = lanes + [0.45, 0.28, 0.11][k % 3];
        chart.draw_series(std::iter::once(Text::new(
            f.label.clone(),
            (a, y),
            ("sans-serif", 11).into_font().color(&BLACK),
        )))?;
    }
    let (per, dual) = intervals(r, end_s);
    for (i, spans) in per.iter().enumerate() {
        let y = lane(i);
        chart.draw_series(
            spans
                .iter()
                .map(|&(a, b)| Rectangle::new([(a, y - 0.3), (b, y + 0.3)], HOLD.filled())),
        )?;
    }
    chart
        .draw_series(dual.iter().map(|&(a, b)| {
            Rectangle::new([(a, 0.55), (b, lanes - 0.45)], DUAL.mix(0.5).filled())
        }))?;
    // Writes: the acknowledged share per bucket as a line, each failure as a red cross.
    let bucket = bucket_s(end_s);
    chart.draw_series(LineSeries::new(
        success_rate(r, bucket)
            .into_iter()
            .map(|(t, share)| (t, 0.1 + 0.35 * share)),
        OK.stroke_width(1),
    ))?;
    chart.draw_series(
        r.samples
            .iter()
            .filter(|s| !s.ok)
            .map(|s| Cross::new((s.end_ms / 1000.0, 0.27), 3, DUAL.stroke_width(1))),
    )?;

    // Lane names left of the plot area.
    let font = ("sans-serif", 13).into_font().color(&BLACK);
    for (i, name) in r.nodes.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(0.0, lane(i)));
        root.draw(&Text::new(
            format!("{name} VIP"),
            (x - 70, y - 6),
            font.clone(),
        ))?;
    }
    let (x, y) = chart.backend_coord(&(0.0, 0.27));
    root.draw(&Text::new(
        "writes".to_string(),
        (x - 70, y - 6),
        font.clone(),
    ))?;
    let (_, h) = root.dim_in_pixel();
    root.draw(&Text::new(
        "blue: holds the VIP · red band: two or more holders · green line: share of writes \
         acknowledged per bucket · red ×: a failed write · orange: a fault, from made to undone"
            .to_string(),
        (80, h as i32 - 22),
        ("sans-serif", 12).into_font().color(&BLACK),
    ))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::{CycleReport, DrillReport, Fault};

    fn report() -> DrillReport {
        DrillReport {
            writes_acked: 3,
            writes_failed: 1,
            writes_lost: 0,
            writes_failed_present: 0,
            cycles: vec![CycleReport {
                cycle: 0,
                fault: Fault::Kill,
                node: "n0".into(),
                new_holder: Some("n1".into()),
                failover_ms: 200.0,
                failover_basis: crate::drill::Basis::Writes,
                failed_requests: 1,
                acked_requests: 2,
                dual_holder_ms: 0.0,
                dual_holder_connected_ms: 0.0,
                failback_ms: 0.0,
                steady: true,
                unsteady: None,
                fault_at_ms: 1000.0,
                restored_at_ms: 2000.0,
                steady_at_ms: 2500.0,
                exit_code: None,
            }],
            summary: vec![],
            key_prefix: "drill/x/".into(),
            nodes: vec!["n0".into(), "n1".into()],
            members: vec![],
            hold_ms: 1000.0,
            duration_ms: 3000.0,
            holders: vec![
                HolderChange {
                    t_ms: 0,
                    holders: vec![0],
                },
                HolderChange {
                    t_ms: 1150,
                    holders: vec![0, 1],
                },
                HolderChange {
                    t_ms: 1200,
                    holders: vec![1],
                },
            ],
            vip_polls: 300,
            loadavg_start: String::new(),
            loadavg_end: String::new(),
            samples: vec![
                Sample {
                    seq: 1,
                    start_ms: 900.0,
                    end_ms: 910.0,
                    ok: true,
                },
                Sample {
                    seq: 2,
                    start_ms: 950.0,
                    end_ms: 1950.0,
                    ok: false,
                },
                Sample {
                    seq: 3,
                    start_ms: 1950.0,
                    end_ms: 1960.0,
                    ok: true,
                },
            ],
        }
    }

    #[test]
    fn success_rate_buckets_by_end_time() {
        let r = report();
        let rate = success_rate(&r.timeline(), 0.1);
        assert_eq!(rate.len(), 2);
        assert_eq!(rate[0].1, 1.0);
        assert!((rate[1].0 - 1.9).abs() < 1e-9);
        assert_eq!(rate[1].1, 0.5);
    }

    #[test]
    fn the_svg_has_lanes_and_fault_labels() {
        let svg = draw(&report().timeline());
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        assert!(svg.contains("n0 VIP") && svg.contains("n1 VIP"));
        assert!(svg.contains("0 kill@n0"));
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
