//! Timing and reporting shared by the benches of every crate, included with
//! `#[path = "../../../support/bench_harness.rs"] mod harness;`. Each figure is
//! timed against a baseline in the same run, because this machine is shared
//! and noisy: the ratio is what counts.
#![allow(dead_code)]

use std::{
    fs,
    time::{Duration, Instant},
};

/// Repeated timings of one side of a figure.
#[derive(Debug, Default)]
pub struct Samples(pub Vec<Duration>);

impl Samples {
    /// Times one run of `f`.
    pub fn time<T>(&mut self, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.0.push(t.elapsed());
        out
    }
    /// The fastest repetition.
    pub fn best(&self) -> Duration {
        self.0.iter().min().copied().unwrap_or_default()
    }
    /// The median repetition.
    pub fn median(&self) -> Duration {
        let mut v = self.0.clone();
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    }
    fn millis(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
            .collect()
    }
}

/// One figure: our timings, the baseline's, how much work one repetition
/// does, and the target for the ratio.
#[derive(Debug, Default)]
pub struct Row {
    pub name: String,
    /// Bytes (or items) one repetition handles, for the rate column.
    pub work: u64,
    pub ours: Samples,
    pub base: Samples,
    pub target: &'static str,
}

impl Row {
    pub fn new(name: impl Into<String>, work: u64, target: &'static str) -> Self {
        Self {
            name: name.into(),
            work,
            target,
            ..Self::default()
        }
    }
    /// Our throughput over the baseline's (> 1: we are faster).
    pub fn ratio(&self, pick: fn(&Samples) -> Duration) -> f64 {
        pick(&self.base).as_secs_f64() / pick(&self.ours).as_secs_f64()
    }
    /// Every repetition's raw time, for judging the noise.
    pub fn log(&self) {
        let (o, b) = (self.ours.millis(), self.base.millis());
        println!("  {}: ours ms {o:?}, baseline ms {b:?}", self.name);
    }
}

/// Bytes per second as MiB/s or GiB/s.
pub fn bytes_rate(bytes: u64, d: Duration) -> String {
    let mib = bytes as f64 / (1u64 << 20) as f64 / d.as_secs_f64();
    if mib >= 1024.0 {
        format!("{:.2} GiB/s", mib / 1024.0)
    } else {
        format!("{mib:.0} MiB/s")
    }
}

/// Items per second, in thousands.
pub fn items_rate(items: u64, d: Duration) -> String {
    format!("{:.1} k/s", items as f64 / d.as_secs_f64() / 1e3)
}

/// The closing table: the rate of the best repetition of each side, the
/// ratio of bests, and the ratio of medians as a check on the noise.
pub fn table(rows: &[Row], rate: fn(u64, Duration) -> String) {
    let line = |c: [&str; 5], t: &str| {
        println!(
            "{:<38} {:>11} {:>11} {:>6} {:>6}  {t}",
            c[0], c[1], c[2], c[3], c[4]
        );
    };
    println!();
    line(["figure", "ours", "baseline", "ratio", "median"], "target");
    for r in rows {
        let (o, b) = (rate(r.work, r.ours.best()), rate(r.work, r.base.best()));
        let (best, med) = (r.ratio(Samples::best), r.ratio(Samples::median));
        let (best, med) = (format!("{best:.2}"), format!("{med:.2}"));
        line([&r.name, &o, &b, &best, &med], r.target);
    }
}

/// Cheap facts about the machine, so runs can be compared.
pub fn machine_facts() {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        let line = cpuinfo.lines().find(|l| l.starts_with(key));
        line.and_then(|l| l.split(':').nth(1)).unwrap_or("?").trim()
    };
    let flags: Vec<_> = field("flags").split(' ').collect();
    let simd = ["avx512ifma", "avx512f", "avx2", "sse4_1"];
    let simd = simd
        .into_iter()
        .find(|f| flags.contains(f))
        .unwrap_or("none");
    let aes = if flags.contains(&"aes") { "yes" } else { "no" };
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem: Vec<_> = meminfo.split_whitespace().take(3).collect();
    println!(
        "machine: nproc {nproc}, cpu \"{}\", simd {simd}, aes {aes}, {}",
        field("model name"),
        mem.join(" ")
    );
}
