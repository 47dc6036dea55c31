//! Medians, and the fit of CPU per message against payload size.

/// The median (mean of the two middle values for an even count); `None` when empty or when a
/// value is not finite.
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// `y ≈ a + b·x`, least squares weighted by `1/y²` (relative errors), so that small and large
/// payloads count alike although their CPU times differ by orders of magnitude.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearFit {
    /// Intercept (y at x = 0).
    pub a: f64,
    /// Slope.
    pub b: f64,
}

impl LinearFit {
    /// Fits `points` (x, y); `None` with fewer than two distinct x or a non-positive y.
    pub fn relative(points: &[(f64, f64)]) -> Option<LinearFit> {
        if points.len() < 2 || points.iter().any(|&(_, y)| y <= 0.0 || !y.is_finite()) {
            return None;
        }
        let (mut sw, mut swx, mut swy, mut swxx, mut swxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for &(x, y) in points {
            let w = 1.0 / (y * y);
            sw += w;
            swx += w * x;
            swy += w * y;
            swxx += w * x * x;
            swxy += w * x * y;
        }
        let det = sw * swxx - swx * swx;
        if det.abs() < f64::EPSILON * sw * swxx.max(1.0) {
            return None;
        }
        let b = (sw * swxy - swx * swy) / det;
        let a = (swy - b * swx) / sw;
        Some(LinearFit { a, b })
    }

    /// The fitted value at `x`.
    pub fn at(&self, x: f64) -> f64 {
        self.a + self.b * x
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn fit_recovers_a_line() {
        let pts: Vec<(f64, f64)> = [16.0, 256.0, 4096.0, 65536.0, 1048576.0]
            .iter()
            .map(|&x| (x, 0.8 + 0.0002 * x))
            .collect();
        let f = LinearFit::relative(&pts).unwrap();
        assert!((f.a - 0.8).abs() < 1e-9, "{f:?}");
        assert!((f.b - 0.0002).abs() < 1e-12, "{f:?}");
        assert!((f.at(1000.0) - 1.0).abs() < 1e-9);
        assert!(LinearFit::relative(&[(1.0, 1.0)]).is_none());
        assert!(LinearFit::relative(&[(1.0, 1.0), (1.0, 2.0)]).is_none());
    }
}
