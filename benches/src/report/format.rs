//! Number formatting for the report.

/// An integer with thousands separators (`1234567.8` → `1,234,568`).
pub fn int(v: f64) -> String {
    let n = v.round() as i64;
    let s = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        let left = s.len() - i;
        if i > 0 && left / 3 * 3 == left {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A latency given in microseconds: `850 µs`, `12.3 ms`, `1.20 s`.
pub fn latency_us(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{:.2} s", v / 1e6)
    } else if v >= 10_000.0 {
        format!("{:.1} ms", v / 1e3)
    } else if v >= 1000.0 {
        format!("{:.2} ms", v / 1e3)
    } else {
        format!("{v:.0} µs")
    }
}

/// A CPU time per message in microseconds, with three significant digits.
pub fn cpu_us(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0} µs")
    } else if v >= 10.0 {
        format!("{v:.1} µs")
    } else {
        format!("{v:.3} µs")
    }
}

/// Bytes: `812 B`, `8.2 KiB`, `12.0 MiB`.
pub fn bytes(v: f64) -> String {
    if v.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", v / (1024.0 * 1024.0))
    } else if v.abs() >= 1024.0 {
        format!("{:.1} KiB", v / 1024.0)
    } else {
        format!("{v:.0} B")
    }
}

/// A ratio: `0.31×`.
pub fn ratio(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}×")
    } else {
        format!("{v:.2}×")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(int(1_234_567.8), "1,234,568");
        assert_eq!(int(999.0), "999");
        assert_eq!(int(-1000.0), "-1,000");
        assert_eq!(latency_us(850.0), "850 µs");
        assert_eq!(latency_us(3701.0), "3.70 ms");
        assert_eq!(latency_us(123_456.0), "123.5 ms");
        assert_eq!(cpu_us(1.14923), "1.149 µs");
        assert_eq!(bytes(8445.9), "8.2 KiB");
        assert_eq!(ratio(0.3123), "0.31×");
    }
}
