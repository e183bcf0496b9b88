//! Prometheus text exposition (format 0.0.4), shared by core, the edges and
//! the relay: a writer for counters, gauges and histograms, and the record
//! of HTTP requests each service keeps (by method, route template and
//! status, with a latency histogram per route). Pure: the services pass
//! in what they measured.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// The content type of [`Exposition::finish`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets (seconds) of the request histograms.
pub const LATENCY_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// One metric family after another, each with its HELP and TYPE lines.
#[derive(Debug, Default)]
pub struct Exposition(String);

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    fn head(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", help.replace('\n', " "));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    /// A counter family: one sample per label set.
    pub fn counter(&mut self, name: &str, help: &str, samples: &[(&[(&str, &str)], u64)]) {
        self.head(name, help, "counter");
        for (l, v) in samples {
            let _ = writeln!(self.0, "{name}{} {v}", labels(l));
        }
    }

    /// A gauge family.
    pub fn gauge(&mut self, name: &str, help: &str, samples: &[(&[(&str, &str)], f64)]) {
        self.head(name, help, "gauge");
        for (l, v) in samples {
            let _ = writeln!(self.0, "{name}{} {v}", labels(l));
        }
    }

    /// A histogram family: per label set, the count in each bucket (not
    /// cumulative; the writer adds them up), the sum and the total count.
    pub fn histogram(
        &mut self,
        name: &str,
        help: &str,
        bounds: &[f64],
        samples: &[(&[(&str, &str)], &[u64], f64, u64)],
    ) {
        self.head(name, help, "histogram");
        for (l, counts, sum, count) in samples {
            let mut running = 0u64;
            for (le, c) in bounds.iter().zip(counts.iter()) {
                running += c;
                let mut with_le: Vec<(&str, &str)> = l.to_vec();
                let le = le.to_string();
                with_le.push(("le", &le));
                let _ = writeln!(self.0, "{name}_bucket{} {running}", labels(&with_le));
            }
            let mut inf: Vec<(&str, &str)> = l.to_vec();
            inf.push(("le", "+Inf"));
            let _ = writeln!(self.0, "{name}_bucket{} {count}", labels(&inf));
            let _ = writeln!(self.0, "{name}_sum{} {sum}", labels(l));
            let _ = writeln!(self.0, "{name}_count{} {count}", labels(l));
        }
    }

    /// Text exposed as is (another module's families).
    pub fn raw(&mut self, text: &str) {
        self.0.push_str(text);
    }

    pub fn finish(self) -> String {
        self.0
    }
}

#[derive(Debug, Default)]
struct RouteLatency {
    buckets: [u64; LATENCY_BUCKETS.len()],
    sum: f64,
    count: u64,
}

/// The HTTP requests a service answered: counts by (method, route template,
/// status) and a latency histogram per route template. Route templates
/// (`/sessions/{id}/chat`), never raw paths, so the label sets stay few.
#[derive(Debug, Default)]
pub struct HttpRequests {
    inner: Mutex<(
        BTreeMap<(String, String, u16), u64>,
        BTreeMap<String, RouteLatency>,
    )>,
}

impl HttpRequests {
    /// Records one answered request (`route`: the matched template, or
    /// `unmatched`).
    pub fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let Ok(mut g) = self.inner.lock() else { return };
        *g.0.entry((method.to_owned(), route.to_owned(), status))
            .or_default() += 1;
        let lat = g.1.entry(route.to_owned()).or_default();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| seconds <= *b) {
            lat.buckets[i] += 1;
        }
        lat.sum += seconds;
        lat.count += 1;
    }

    /// Writes `<prefix>_http_requests_total` and
    /// `<prefix>_http_request_duration_seconds`.
    pub fn write(&self, prefix: &str, out: &mut Exposition) {
        let Ok(g) = self.inner.lock() else { return };
        let statuses: Vec<(String, String, String, u64)> =
            g.0.iter()
                .map(|((m, r, s), n)| (m.clone(), r.clone(), s.to_string(), *n))
                .collect();
        let samples: Vec<([(&str, &str); 3], u64)> = statuses
            .iter()
            .map(|(m, r, s, n)| {
                (
                    [
                        ("method", m.as_str()),
                        ("route", r.as_str()),
                        ("status", s.as_str()),
                    ],
                    *n,
                )
            })
            .collect();
        let refs: Vec<(&[(&str, &str)], u64)> = samples.iter().map(|(l, n)| (&l[..], *n)).collect();
        out.counter(
            &format!("{prefix}_http_requests_total"),
            "HTTP requests answered, by method, route and status.",
            &refs,
        );
        let routes: Vec<([(&str, &str); 1], &RouteLatency)> =
            g.1.iter()
                .map(|(r, l)| ([("route", r.as_str())], l))
                .collect();
        let hist: Vec<(&[(&str, &str)], &[u64], f64, u64)> = routes
            .iter()
            .map(|(l, lat)| (&l[..], &lat.buckets[..], lat.sum, lat.count))
            .collect();
        out.histogram(
            &format!("{prefix}_http_request_duration_seconds"),
            "Time from a request's arrival to its answer, by route.",
            &LATENCY_BUCKETS,
            &hist,
        );
    }
}

/// Checks that `text` is well-formed exposition: every sample line is
/// `name{labels} value` with a declared TYPE. Returns the samples as
/// (name with labels, value). For tests and for the services' own checks.
pub fn parse(text: &str) -> Result<Vec<(String, f64)>, String> {
    let mut typed = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or_default();
            typed.insert(name.to_owned());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("line {}: no value: {line}", n + 1))?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("line {}: bad value: {line}", n + 1))?;
        let name = series.split('{').next().unwrap_or_default();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        if !typed.contains(family) {
            return Err(format!("line {}: {name} has no TYPE", n + 1));
        }
        if series.contains('{') && !series.ends_with('}') {
            return Err(format!("line {}: unclosed labels: {line}", n + 1));
        }
        out.push((series.to_owned(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_are_written_and_read_back() {
        let mut e = Exposition::new();
        e.counter("x_total", "Things.", &[(&[("kind", "a\"b")], 3), (&[], 1)]);
        e.gauge("x_up", "Up.", &[(&[], 1.0)]);
        let r = HttpRequests::default();
        r.record("GET", "/sessions/{id}", 200, 0.003);
        r.record("GET", "/sessions/{id}", 200, 0.2);
        r.record("POST", "/chat", 429, 7.0);
        r.write("svc", &mut e);
        let text = e.finish();
        let samples = parse(&text).unwrap();
        let get = |s: &str| samples.iter().find(|(k, _)| k == s).map(|(_, v)| *v);
        assert_eq!(get("x_total{kind=\"a\\\"b\"}"), Some(3.0));
        assert_eq!(get("x_total"), Some(1.0));
        assert_eq!(
            get("svc_http_requests_total{method=\"GET\",route=\"/sessions/{id}\",status=\"200\"}"),
            Some(2.0)
        );
        // cumulative buckets: one at or under 5 ms, both under 0.25 s
        assert_eq!(
            get("svc_http_request_duration_seconds_bucket{route=\"/sessions/{id}\",le=\"0.005\"}"),
            Some(1.0)
        );
        assert_eq!(
            get("svc_http_request_duration_seconds_bucket{route=\"/sessions/{id}\",le=\"0.25\"}"),
            Some(2.0)
        );
        // slower than the last bound: only in +Inf
        assert_eq!(
            get("svc_http_request_duration_seconds_bucket{route=\"/chat\",le=\"5\"}"),
            Some(0.0)
        );
        assert_eq!(
            get("svc_http_request_duration_seconds_bucket{route=\"/chat\",le=\"+Inf\"}"),
            Some(1.0)
        );
        assert!(parse("nope 1").is_err(), "a sample without TYPE");
        assert!(parse("# TYPE a counter\na notanumber").is_err());
    }
}
