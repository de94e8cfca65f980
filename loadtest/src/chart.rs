//! A chart of the run: p50/p99 latency and throughput per second, with viewers, as a self-contained SVG.

use std::fmt::Write as _;

use crate::stats::LoadTestResult;

const W: f64 = 900.0;
const H: f64 = 420.0;
const PAD_L: f64 = 70.0;
const PAD_R: f64 = 70.0;
const PAD_T: f64 = 40.0;
const PAD_B: f64 = 50.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if v <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

pub fn render_svg(r: &LoadTestResult, title: &str) -> String {
    let n = r.timeline.len().max(2) as f64;
    let lat_max = nice_max(r.timeline.iter().map(|s| s.p99_ms).fold(0.0, f64::max));
    let rps_max = nice_max(
        r.timeline
            .iter()
            .map(|s| s.requests as f64)
            .fold(0.0, f64::max),
    );
    let x = |i: f64| PAD_L + i / (n - 1.0) * (W - PAD_L - PAD_R);
    let y_lat = |v: f64| H - PAD_B - v / lat_max * (H - PAD_T - PAD_B);
    let y_rps = |v: f64| H - PAD_B - v / rps_max * (H - PAD_T - PAD_B);
    let line = |pts: Vec<(f64, f64)>, color: &str, dash: &str| {
        let d: Vec<String> = pts.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        format!("<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{}\"/>\n", d.join(" "))
    };
    let mut s = String::new();
    let _ = writeln!(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" font-family=\"sans-serif\" font-size=\"12\">");
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{PAD_L}\" y=\"22\" font-size=\"15\">{}</text>",
        esc(title)
    );
    for k in 0..=4 {
        let f = k as f64 / 4.0;
        let yy = H - PAD_B - f * (H - PAD_T - PAD_B);
        let _ = writeln!(
            s,
            "<line x1=\"{PAD_L}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>",
            W - PAD_R
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#c0392b\">{:.0} ms</text>",
            PAD_L - 6.0,
            yy + 4.0,
            lat_max * f
        );
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{:.1}\" fill=\"#2471a3\">{:.0}/s</text>",
            W - PAD_R + 6.0,
            yy + 4.0,
            rps_max * f
        );
    }
    let secs = r.timeline.len();
    for k in 0..=5 {
        let i = (secs.saturating_sub(1)) as f64 * k as f64 / 5.0;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{:.0}s</text>",
            x(i),
            H - PAD_B + 18.0,
            i
        );
    }
    let tl = &r.timeline;
    s.push_str(&line(
        tl.iter()
            .map(|p| (x(p.second as f64), y_rps(p.requests as f64)))
            .collect(),
        "#2471a3",
        "",
    ));
    s.push_str(&line(
        tl.iter()
            .map(|p| (x(p.second as f64), y_lat(p.p50_ms)))
            .collect(),
        "#e67e22",
        "",
    ));
    s.push_str(&line(
        tl.iter()
            .map(|p| (x(p.second as f64), y_lat(p.p99_ms)))
            .collect(),
        "#c0392b",
        "",
    ));
    let errs: Vec<&crate::stats::Second> = tl.iter().filter(|p| p.errors > 0).collect();
    for p in errs {
        let _ = writeln!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"black\"><title>{} errors</title></circle>", x(p.second as f64), y_rps(p.errors as f64), p.errors);
    }
    let legend = [
        ("#2471a3", "requests/s (right axis)"),
        ("#e67e22", "p50 latency"),
        ("#c0392b", "p99 latency"),
        ("black", "errors/s"),
    ];
    for (i, (c, label)) in legend.iter().enumerate() {
        let lx = PAD_L + 10.0 + i as f64 * 190.0;
        let _ = writeln!(s, "<rect x=\"{lx}\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{c}\"/><text x=\"{}\" y=\"{}\">{label}</text>", H - 14.0, lx + 16.0, H - 9.0);
    }
    s.push_str("</svg>\n");
    s
}
