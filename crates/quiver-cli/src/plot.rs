//! Histogram pictures for `quiver diagnose`, drawn with plotters as SVG (text stays text:
//! no fonts needed on the machine).

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use quiver::diagnose::Distribution;

/// Draws each named distribution as a share-of-pairs histogram over cosine [-1, 1].
pub fn histograms(path: &Path, title: &str, series: &[(&str, &Distribution)]) -> Result<()> {
    let plot_err = |e: &dyn std::fmt::Display| anyhow!("drawing {}: {e}", path.display());
    let root = SVGBackend::new(path, (800, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| plot_err(&e))?;
    let share = |d: &Distribution, count: u64| count as f32 / d.count.max(1) as f32;
    let top =
        series.iter().flat_map(|(_, d)| d.histogram.iter().map(move |&c| share(d, c))).fold(0.0f32, f32::max).max(0.01);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(52)
        .build_cartesian_2d(-1.0f32..1.0f32, 0.0f32..top * 1.05)
        .map_err(|e| plot_err(&e))?;
    chart.configure_mesh().x_desc("cosine similarity").y_desc("share of pairs").draw().map_err(|e| plot_err(&e))?;
    let colours = [BLUE, RED, GREEN];
    for ((name, d), colour) in series.iter().zip(colours) {
        let width = 2.0 / d.histogram.len() as f32;
        chart
            .draw_series(d.histogram.iter().enumerate().map(|(i, &c)| {
                let x0 = -1.0 + i as f32 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, share(d, c))], colour.mix(0.45).filled())
            }))
            .map_err(|e| plot_err(&e))?
            .label(format!("{name} (n={}, mean {:.3}, std {:.3})", d.count, d.mean, d.std))
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.mix(0.45).filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| plot_err(&e))?;
    root.present().map_err(|e| plot_err(&e))?;
    Ok(())
}
