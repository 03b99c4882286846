//! Summaries of repeated runs, the bars they are held to, and the Markdown tables of
//! `BENCHMARKS.md`.

use std::fmt::Write as _;

/// Median and range of one quantity over repeated runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// How many runs.
    pub n: usize,
}

impl Summary {
    /// The summary of `values` (NaN everywhere when there are none).
    pub fn of(values: &[f64]) -> Self {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return Self {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
                n,
            };
        }
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Self {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            n,
        }
    }

    /// Whether it describes at least one run of finite, positive values.
    pub fn is_sane(&self) -> bool {
        self.n > 0
            && [self.median, self.min, self.max]
                .iter()
                .all(|v| v.is_finite() && *v > 0.0)
            && self.min <= self.median
            && self.median <= self.max
    }

    /// `median (min – max)` with three significant digits.
    pub fn text(&self) -> String {
        format!(
            "{} ({} – {})",
            sig(self.median),
            sig(self.min),
            sig(self.max)
        )
    }
}

/// The median of per-run ratios `a[i] / b[i]` (runs are paired: each `a` run sits next to its
/// `b` run in time, so drift of the machine cancels out). Two zeros (neither side was
/// preempted in a run, say) are equal: ratio 1.
pub fn paired_ratio(a: &[f64], b: &[f64]) -> Summary {
    let ratios: Vec<f64> = a
        .iter()
        .zip(b)
        .map(|(x, y)| if *x == 0.0 && *y == 0.0 { 1.0 } else { x / y })
        .collect();
    Summary::of(&ratios)
}

/// What a figure must reach.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bar {
    /// At least this much.
    AtLeast(f64),
    /// At most this much.
    AtMost(f64),
    /// No bar: shown for information.
    Info,
}

impl Bar {
    /// Whether `value` meets the bar (`None` for [`Bar::Info`]).
    pub fn met(self, value: f64) -> Option<bool> {
        match self {
            Bar::AtLeast(bar) => Some(value >= bar),
            Bar::AtMost(bar) => Some(value <= bar),
            Bar::Info => None,
        }
    }

    fn text(self) -> String {
        match self {
            Bar::AtLeast(bar) => format!("≥ {bar}"),
            Bar::AtMost(bar) => format!("≤ {bar}"),
            Bar::Info => "–".into(),
        }
    }

    fn verdict(self, value: f64) -> &'static str {
        match self.met(value) {
            Some(true) => "met",
            Some(false) => "**missed**",
            None => "–",
        }
    }
}

/// The SDK against its baseline, measured in the same run.
#[derive(Clone, Debug)]
pub struct Comparison {
    /// What is compared, e.g. `getMedia, concurrency 64`.
    pub case: String,
    /// The unit of `sdk` and `baseline`, e.g. `req/s`.
    pub unit: String,
    /// The SDK's figure.
    pub sdk: Summary,
    /// The baseline's figure.
    pub baseline: Summary,
    /// `sdk / baseline`, run by run.
    pub ratio: Summary,
    /// What the ratio's median must reach.
    pub bar: Bar,
}

impl Comparison {
    /// A comparison of paired runs.
    pub fn new(
        case: impl Into<String>,
        unit: &str,
        sdk: &[f64],
        baseline: &[f64],
        bar: Bar,
    ) -> Self {
        Self {
            case: case.into(),
            unit: unit.into(),
            sdk: Summary::of(sdk),
            baseline: Summary::of(baseline),
            ratio: paired_ratio(sdk, baseline),
            bar,
        }
    }

    /// Whether the bar is met (`None` without a bar).
    pub fn met(&self) -> Option<bool> {
        self.bar.met(self.ratio.median)
    }
}

/// One measured figure with its bar.
#[derive(Clone, Debug)]
pub struct Measure {
    /// What was measured.
    pub case: String,
    /// Its unit.
    pub unit: String,
    /// The figure.
    pub value: Summary,
    /// What its median must reach.
    pub bar: Bar,
}

impl Measure {
    /// A measure over runs.
    pub fn new(case: impl Into<String>, unit: &str, values: &[f64], bar: Bar) -> Self {
        Self {
            case: case.into(),
            unit: unit.into(),
            value: Summary::of(values),
            bar,
        }
    }

    /// Whether the bar is met (`None` without a bar).
    pub fn met(&self) -> Option<bool> {
        self.bar.met(self.value.median)
    }
}

/// One benchmark item: its tables, the command that reproduces it, and notes.
#[derive(Clone, Debug, Default)]
pub struct Section {
    /// The heading.
    pub title: String,
    /// The command that produced it.
    pub command: String,
    /// Runs per figure.
    pub runs: usize,
    /// The machine's load average (`/proc/loadavg`, last minute) when the run started and
    /// ended, when it could be read.
    pub load: Option<(f64, f64)>,
    /// Name of the SDK side in the comparison table.
    pub sdk_label: String,
    /// Name of the baseline side in the comparison table.
    pub baseline_label: String,
    /// SDK against baseline.
    pub comparisons: Vec<Comparison>,
    /// Other figures.
    pub measures: Vec<Measure>,
    /// What the reader should know.
    pub notes: Vec<String>,
}

impl Section {
    /// Whether every figure is a sane (finite, positive) summary of at least one run.
    pub fn all_sane(&self) -> bool {
        self.comparisons
            .iter()
            .all(|c| c.sdk.is_sane() && c.baseline.is_sane() && c.ratio.is_sane())
            && self.measures.iter().all(|m| m.value.is_sane())
    }

    /// The comparison named `case`.
    pub fn comparison(&self, case: &str) -> Option<&Comparison> {
        self.comparisons.iter().find(|c| c.case == case)
    }

    /// The measure named `case`.
    pub fn measure(&self, case: &str) -> Option<&Measure> {
        self.measures.iter().find(|m| m.case == case)
    }

    /// The section as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "### {}\n", self.title);
        let _ = writeln!(out, "```sh\n{}\n```\n", self.command);
        let _ = write!(
            out,
            "{} runs per figure; each cell is median (min – max).",
            self.runs
        );
        if let Some((start, end)) = self.load {
            let _ = write!(
                out,
                " Load average of the machine at start / end: {start:.2} / {end:.2}."
            );
        }
        out.push_str("\n\n");
        if !self.comparisons.is_empty() {
            let _ = writeln!(
                out,
                "| case | {} | {} | ratio (SDK / baseline) | bar | |",
                self.sdk_label, self.baseline_label
            );
            let _ = writeln!(out, "| --- | --- | --- | --- | --- | --- |");
            for c in &self.comparisons {
                let _ = writeln!(
                    out,
                    "| {} | {} {} | {} {} | {} | {} | {} |",
                    c.case,
                    c.sdk.text(),
                    c.unit,
                    c.baseline.text(),
                    c.unit,
                    c.ratio.text(),
                    c.bar.text(),
                    c.bar.verdict(c.ratio.median)
                );
            }
            out.push('\n');
        }
        if !self.measures.is_empty() {
            let _ = writeln!(out, "| measure | value | bar | |");
            let _ = writeln!(out, "| --- | --- | --- | --- |");
            for m in &self.measures {
                let _ = writeln!(
                    out,
                    "| {} | {} {} | {} | {} |",
                    m.case,
                    m.value.text(),
                    m.unit,
                    m.bar.text(),
                    m.bar.verdict(m.value.median)
                );
            }
            out.push('\n');
        }
        for note in &self.notes {
            let _ = writeln!(out, "- {note}");
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        out
    }
}

/// `v` with three significant digits (no exponent for the magnitudes these tables hold).
pub fn sig(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let magnitude = if v == 0.0 {
        0
    } else {
        v.abs().log10().floor() as i32
    };
    let decimals = (2 - magnitude).clamp(0, 6) as usize;
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_and_ratios() {
        let s = Summary::of(&[3.0, 1.0, 2.0, 10.0]);
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 10.0, 4));
        assert!(s.is_sane());
        assert!(!Summary::of(&[]).is_sane());
        assert!(!Summary::of(&[f64::INFINITY]).is_sane());
        let r = paired_ratio(&[2.0, 4.0, 9.0], &[1.0, 4.0, 3.0]);
        assert_eq!(r.median, 2.0);
        assert_eq!(paired_ratio(&[0.0, 0.0, 2.0], &[0.0, 1.0, 1.0]).median, 1.0);
        assert_eq!(sig(1234.5), "1234");
        assert_eq!(sig(0.98765), "0.988");
        assert_eq!(sig(12.345), "12.3");
        assert_eq!(Bar::AtLeast(0.95).met(0.96), Some(true));
        assert_eq!(Bar::AtMost(1.1).met(1.2), Some(false));
    }

    #[test]
    fn markdown_prints_the_load_average() {
        let mut section = Section {
            title: "t".into(),
            command: "c".into(),
            runs: 9,
            ..Section::default()
        };
        assert!(
            section
                .markdown()
                .contains("\n9 runs per figure; each cell is median (min – max).\n\n")
        );
        section.load = Some((3.02, 17.5));
        assert!(section.markdown().contains(
            "\n9 runs per figure; each cell is median (min – max). Load average of the machine at start / end: 3.02 / 17.50.\n\n"
        ));
    }
}
