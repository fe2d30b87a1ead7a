//! Projection profiles of a text mask along a trial slope.
//!
//! A text line `y = c + (x - xc) * t` projects to one row of the profile when every column is
//! shifted up by `(x - xc) * t`. [`ColumnSums::score`] shifts by whole rows (columns with the same
//! shift form a band whose contribution comes from two prefix-sum columns) and scores the
//! sharpness of the profile. [`InkColumns::refine`] measures the remaining sub-row slope by
//! cross-correlating the profiles of vertical strips.

use crate::geometry::round;

/// Column-major prefix sums of a mask: `cum[x * height + y]` is the mask sum of row `y` over
/// columns `0..x`.
pub(crate) struct ColumnSums {
    width: usize,
    height: usize,
    cum: Vec<u32>,
}

/// Vertical strips cross-correlated by [`InkColumns::refine`].
const STRIPS: usize = 8;
/// Largest strip offset, in rows, that [`InkColumns::refine`] looks for.
const MAX_LAG: usize = 3;
/// Rows processed together while building the prefix sums (keeps the reads cache-friendly).
const TILE_ROWS: usize = 64;

impl ColumnSums {
    /// Prefix sums of a row-major `width x height` mask of small weights.
    pub fn new(mask: &[u8], width: usize, height: usize) -> Self {
        let mut cum = vec![0u32; (width + 1) * height];
        for y0 in (0..height).step_by(TILE_ROWS) {
            let y1 = (y0 + TILE_ROWS).min(height);
            for x in 0..width {
                let (done, rest) = cum.split_at_mut((x + 1) * height);
                let prev = &done[x * height + y0..x * height + y1];
                let next = &mut rest[y0..y1];
                for (y, (n, &p)) in (y0..y1).zip(next.iter_mut().zip(prev)) {
                    *n = p + u32::from(mask[y * width + x]);
                }
            }
        }
        Self { width, height, cum }
    }

    /// Sharpness of the profile along slope `t`: the sum of squared differences of neighbouring
    /// profile rows. `profile` is scratch space reused between calls.
    pub fn score(&self, t: f64, profile: &mut Vec<u32>) -> f64 {
        let (w, h) = (self.width, self.height);
        let xc = (w as f64 - 1.0) / 2.0;
        let shift = |x: usize| round((x as f64 - xc) * t);
        let pad = shift(0).abs().max(shift(w - 1).abs()) as usize + 1;
        profile.clear();
        profile.resize(h + 2 * pad, 0);
        let mut band_start = 0;
        let mut band_shift = shift(0);
        for x in 1..=w {
            let s = if x < w { shift(x) } else { i64::MAX };
            if s == band_shift {
                continue;
            }
            // |band_shift| < pad, so the band lands inside the profile.
            let base = (pad as i64 - band_shift) as usize;
            let first = &self.cum[band_start * h..(band_start + 1) * h];
            let last = &self.cum[x * h..(x + 1) * h];
            for ((p, &a), &b) in profile[base..base + h].iter_mut().zip(last).zip(first) {
                *p += a - b;
            }
            band_start = x;
            band_shift = s;
        }
        profile
            .windows(2)
            .map(|pair| {
                let d = i64::from(pair[1]) - i64::from(pair[0]);
                (d * d) as f64
            })
            .sum()
    }
}

/// Ink pixels of a 0/1 mask grouped by column: the rows of column `x` are
/// `rows[starts[x]..starts[x + 1]]`, ascending.
pub(crate) struct InkColumns {
    height: usize,
    starts: Vec<usize>,
    rows: Vec<u32>,
}

impl InkColumns {
    /// Collects the non-zero pixels of a row-major `width x height` mask.
    pub fn new(mask: &[u8], width: usize, height: usize) -> Self {
        let mut starts = vec![0usize; width + 1];
        for row in mask.chunks_exact(width) {
            for (count, &m) in starts[1..].iter_mut().zip(row) {
                *count += usize::from(m != 0);
            }
        }
        for x in 0..width {
            starts[x + 1] += starts[x];
        }
        let mut next = starts[..width].to_vec();
        let mut rows = vec![0u32; starts[width]];
        for (y, row) in mask.chunks_exact(width).enumerate() {
            for (x, _) in row.iter().enumerate().filter(|(_, &m)| m != 0) {
                rows[next[x]] = y as u32;
                next[x] += 1;
            }
        }
        Self {
            height,
            starts,
            rows,
        }
    }

    /// Number of ink pixels.
    pub fn count(&self) -> usize {
        self.rows.len()
    }

    fn width(&self) -> usize {
        self.starts.len() - 1
    }

    /// Sub-row correction of slope `t`: each strip's profile (with linear interpolation of the
    /// fractional shift) is cross-correlated with the profile of the other strips; a straight
    /// fit of the offsets against the strip centres gives the residual slope. `None` when fewer
    /// than three strips hold usable text.
    pub fn refine(&self, t: f64) -> Option<f64> {
        let (w, h) = (self.width(), self.height);
        if w < STRIPS * 4 || h < 4 {
            return None;
        }
        let xc = (w as f64 - 1.0) / 2.0;
        let pad = (xc * t.abs()).ceil() as usize + MAX_LAG + 2;
        let len = h + 2 * pad;
        let mut profiles = vec![0f64; STRIPS * len];
        // Mask mass and first moment (about the centre column) of each strip.
        let mut mass = [0f64; STRIPS];
        let mut moment = [0f64; STRIPS];
        for (x, rows) in self
            .starts
            .windows(2)
            .map(|r| &self.rows[r[0]..r[1]])
            .enumerate()
        {
            let strip = x * STRIPS / w;
            let start = pad as f64 - (x as f64 - xc) * t;
            let base = start.floor();
            let frac = start - base;
            let base = base as usize;
            let profile = &mut profiles[strip * len..(strip + 1) * len];
            for &y in rows {
                let y = base + y as usize;
                profile[y] += 1.0 - frac;
                profile[y + 1] += frac;
            }
            let column_mass = rows.len() as f64;
            mass[strip] += column_mass;
            moment[strip] += column_mass * (x as f64 - xc);
        }
        // Work on derivatives: edges of text lines carry the position, not their mass.
        let derivative: Vec<f64> = profiles
            .chunks_exact(len)
            .flat_map(|p| p.windows(2).map(|d| d[1] - d[0]).chain([0.0]))
            .collect();
        let mut total = vec![0f64; len];
        for strip in derivative.chunks_exact(len) {
            for (t, d) in total.iter_mut().zip(strip) {
                *t += d;
            }
        }
        let (all_mass, all_moment) = (mass.iter().sum::<f64>(), moment.iter().sum::<f64>());
        let mut fit = LineFit::default();
        for (s, strip) in derivative.chunks_exact(len).enumerate() {
            let rest_mass = all_mass - mass[s];
            if mass[s] == 0.0 || rest_mass <= 0.0 {
                continue;
            }
            // The strip is compared with the rest of the page, whose centre is elsewhere.
            let distance = moment[s] / mass[s] - (all_moment - moment[s]) / rest_mass;
            if let Some(offset) = strip_offset(strip, &total) {
                let weight: f64 = strip.iter().map(|d| d.abs()).sum();
                fit.add(distance, offset, weight);
            }
        }
        fit.slope().map(|residual| t + residual)
    }
}

/// Offset (in rows, sub-row by a parabola through the peak) at which `strip` best matches the
/// rest of the page (`total` minus `strip`), or `None` when the peak is not inside the lag range.
fn strip_offset(strip: &[f64], total: &[f64]) -> Option<f64> {
    let len = strip.len();
    let lags = 2 * MAX_LAG + 1;
    let mut corr = [0f64; 2 * MAX_LAG + 1];
    for (k, c) in corr.iter_mut().enumerate() {
        // Lag l = k - MAX_LAG: sum over i of strip[i] * rest[i - l].
        for i in MAX_LAG..len - MAX_LAG {
            let j = i + MAX_LAG - k;
            *c += strip[i] * (total[j] - strip[j]);
        }
    }
    let best = (0..lags).max_by(|&a, &b| corr[a].total_cmp(&corr[b]))?;
    if best == 0 || best + 1 == lags || corr[best] <= 0.0 {
        return None;
    }
    let (left, mid, right) = (corr[best - 1], corr[best], corr[best + 1]);
    let curvature = left - 2.0 * mid + right;
    if curvature >= 0.0 {
        return None;
    }
    Some(best as f64 - MAX_LAG as f64 + 0.5 * (left - right) / curvature)
}

/// Weighted least-squares fit of `offset = a + b * x`.
#[derive(Default)]
struct LineFit {
    points: usize,
    sw: f64,
    swx: f64,
    swy: f64,
    swxx: f64,
    swxy: f64,
}

impl LineFit {
    fn add(&mut self, x: f64, y: f64, w: f64) {
        self.points += 1;
        self.sw += w;
        self.swx += w * x;
        self.swy += w * y;
        self.swxx += w * x * x;
        self.swxy += w * x * y;
    }

    fn slope(&self) -> Option<f64> {
        let spread = self.sw * self.swxx - self.swx * self.swx;
        if self.points < 3 || spread <= 0.0 {
            return None;
        }
        Some((self.sw * self.swxy - self.swx * self.swy) / spread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A mask of horizontal-ish lines `y = c + (x - xc) * slope`, two rows thick.
    fn lines(width: usize, height: usize, slope: f64) -> Vec<u8> {
        let mut mask = vec![0u8; width * height];
        let xc = (width as f64 - 1.0) / 2.0;
        for c in (10..height - 10).step_by(9) {
            for x in 0..width {
                let y = c as f64 + (x as f64 - xc) * slope;
                for dy in 0..2 {
                    let yy = y.round() as i64 + dy;
                    if (0..height as i64).contains(&yy) && x % 5 != 0 {
                        mask[yy as usize * width + x] = 1;
                    }
                }
            }
        }
        mask
    }

    #[test]
    fn prefix_sums_count_rows() {
        let mask = [1, 0, 1, 1, 1, 0];
        let sums = ColumnSums::new(&mask, 3, 2);
        assert_eq!(sums.cum, vec![0, 0, 1, 1, 1, 2, 2, 2]);
        let ink = InkColumns::new(&mask, 3, 2);
        assert_eq!(
            (ink.count(), &ink.starts[..], &ink.rows[..]),
            (4, &[0, 2, 3, 4][..], &[0, 1, 1, 0][..])
        );
    }

    #[test]
    fn score_peaks_at_the_true_slope() {
        let slope = 0.05;
        let sums = ColumnSums::new(&lines(300, 200, slope), 300, 200);
        let mut scratch = Vec::new();
        let best = (-20..=20)
            .map(|i| f64::from(i) * 0.01)
            .max_by(|a, b| {
                let sa = sums.score(*a, &mut scratch);
                let sb = sums.score(*b, &mut scratch);
                sa.total_cmp(&sb)
            })
            .unwrap();
        assert!((best - slope).abs() < 0.006, "best {best}");
    }

    #[test]
    fn refine_recovers_sub_row_slope() {
        let slope = 0.003;
        let ink = InkColumns::new(&lines(400, 200, slope), 400, 200);
        let refined = ink.refine(0.0).unwrap();
        assert!((refined - slope).abs() < 0.0008, "refined {refined}");
    }

    #[test]
    fn refine_needs_content() {
        let empty = InkColumns::new(&[0; 400 * 20], 400, 20);
        assert_eq!(empty.refine(0.0), None);
        let narrow = InkColumns::new(&[1; 10 * 20], 10, 20);
        assert_eq!(narrow.refine(0.0), None);
    }
}
