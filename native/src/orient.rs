//! Page orientation from the components of a deskewed bilevel page.
//!
//! * Line direction (0 vs 90 degrees): for every character-sized component, the direction to
//!   its nearest character-sized neighbour (the "docstrum"). Characters of a line sit closer to
//!   each other than to the lines above and below, so most neighbours lie along the lines.
//! * Up or down (0 vs 180 degrees): punctuation. Full stops, commas and the Chinese 。，、 sit
//!   at the bottom of their line, next to a character and alone in their columns; upside down
//!   they sit at the top. Marks that share their columns with something else in the line (the
//!   dot of an i, the dot on top of 文 or 主) do not vote, and neither do marks far from any
//!   character (specks).

use crate::binarise::{binarise_with, BlockStats, Sauvola};
use crate::components::{label, Component, Components, Runs};
use crate::error::KernelError;
use crate::image::Image;
use crate::threads::with_pool;

/// Result of [`estimate_orientation`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OrientationEstimate {
    /// Counter-clockwise quarter turns that make the page upright: 0, 90, 180 or 270.
    pub orientation_deg: u32,
    /// How clear the up/down evidence is, 0..=1.
    pub confidence: f64,
}

/// Orientation of a deskewed page, from its Sauvola-binarised OCR channel (window scaled to
/// the page size taken as A4). `clean_page` runs the same test after deskewing.
pub fn estimate_orientation(
    image: Image<'_>,
    threads: usize,
) -> Result<OrientationEstimate, KernelError> {
    let plane = crate::grey::to_grey(image);
    let (w, h) = (image.width(), image.height());
    let dpi = crate::quality::a4_dpi(w, h);
    let params = Sauvola {
        window: ((4.15 * dpi / 25.4).round() as usize).clamp(7, crate::binarise::MAX_WINDOW),
        k: crate::binarise::DEFAULT_K,
    };
    let data = plane.view().data();
    let stats = BlockStats::of_plane(data, w, h, params.block());
    let bilevel = with_pool(threads, || {
        Ok(binarise_with(data, w, &stats, params.k, threads > 1))
    })?;
    let first = evidence(&bilevel.runs, &label(&bilevel.runs));
    let (turn, ev) = if first.sideways() {
        let turned = crate::quarter::rotate_quarter(bilevel.bilevel.view(), 1);
        let runs = Runs::of_bilevel(turned.view().data(), None, turned.width());
        (90, evidence(&runs, &label(&runs)))
    } else {
        (0, first)
    };
    Ok(OrientationEstimate {
        orientation_deg: if ev.upside_down() { turn + 180 } else { turn },
        confidence: ev.confidence(),
    })
}

/// Votes behind an orientation estimate.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Evidence {
    /// Typical character height, pixels (0 when the page has no character-sized marks).
    pub char_height: f64,
    /// Nearest neighbours along rows and along columns.
    pub along_rows: u32,
    pub along_columns: u32,
    /// Punctuation marks at the bottom and at the top of their lines.
    pub bottom: u32,
    pub top: u32,
}

/// Fewer character-sized components than this: no estimate.
const MIN_CHARS: usize = 8;
/// Line direction: the losing direction must have at most this share of the winning votes.
const DIRECTION_RATIO: f64 = 0.6;
/// Up/down: the top needs this many marks, this many more than the bottom, and twice as many.
const MIN_TOP: u32 = 3;
const MIN_MARGIN: u32 = 2;

impl Evidence {
    /// True when the lines clearly run down the page (it lies sideways).
    pub fn sideways(&self) -> bool {
        let (h, v) = (f64::from(self.along_rows), f64::from(self.along_columns));
        v >= 2.0 * MIN_CHARS as f64 && h <= DIRECTION_RATIO * v
    }

    /// True when the punctuation clearly sits at the top of the lines (upside down).
    pub fn upside_down(&self) -> bool {
        self.top >= MIN_TOP && self.top >= self.bottom + MIN_MARGIN && self.top >= 2 * self.bottom
    }

    /// 0..1: how clear the up/down decision is.
    pub fn confidence(&self) -> f64 {
        let (b, t) = (f64::from(self.bottom), f64::from(self.top));
        let margin = (b - t).abs() / (b + t + 2.0);
        let support = ((b + t) / 6.0).min(1.0);
        margin * support
    }
}

fn is_char(c: &Component, hm: f64) -> bool {
    let (w, h) = (f64::from(c.width()), f64::from(c.height()));
    h >= 0.4 * hm && h <= 2.5 * hm && w <= 3.0 * hm
}

/// Typical character height: the median height of components that could be letters.
fn char_height(comps: &Components) -> Option<f64> {
    let mut heights: Vec<u32> = comps
        .list
        .iter()
        .filter(|c| c.height() >= 6 && c.width() <= 4 * c.height() && c.area >= 12)
        .map(Component::height)
        .collect();
    if heights.len() < MIN_CHARS {
        return None;
    }
    let mid = heights.len() / 2;
    Some(f64::from(*heights.select_nth_unstable(mid).1))
}

/// Collects the orientation evidence of a deskewed bilevel page.
pub(crate) fn evidence(runs: &Runs, comps: &Components) -> Evidence {
    let Some(hm) = char_height(comps) else {
        return Evidence::default();
    };
    let chars: Vec<usize> = (0..comps.list.len())
        .filter(|&i| is_char(&comps.list[i], hm))
        .collect();
    if chars.len() < MIN_CHARS {
        return Evidence::default();
    }
    let (along_rows, along_columns) = neighbour_directions(comps, &chars, hm);
    let (bottom, top) = punctuation(runs, comps, &chars, hm);
    Evidence {
        char_height: hm,
        along_rows,
        along_columns,
        bottom,
        top,
    }
}

/// Votes of nearest character-sized neighbours, by the gap between bounding boxes: (along
/// rows, along columns).
fn neighbour_directions(comps: &Components, chars: &[usize], hm: f64) -> (u32, u32) {
    let cell = (2.0 * hm).max(1.0);
    let centre = |c: &Component| (f64::from(c.x0 + c.x1) / 2.0, f64::from(c.y0 + c.y1) / 2.0);
    let key = |(x, y): (f64, f64)| ((x / cell) as i64, (y / cell) as i64);
    let mut grid: std::collections::HashMap<(i64, i64), Vec<usize>> = Default::default();
    for &i in chars {
        grid.entry(key(centre(&comps.list[i]))).or_default().push(i);
    }
    let gap = |a0: u32, a1: u32, b0: u32, b1: u32| {
        f64::from(b0.saturating_sub(a1).max(a0.saturating_sub(b1)))
    };
    let (mut rows, mut cols) = (0, 0);
    for &i in chars {
        let a = &comps.list[i];
        let (gx, gy) = key(centre(a));
        // (distance, gap along x, gap along y) of the nearest neighbour.
        let mut best: Option<(f64, f64, f64)> = None;
        for dy in -1..=1 {
            for dx in -1..=1 {
                for &j in grid.get(&(gx + dx, gy + dy)).into_iter().flatten() {
                    let b = &comps.list[j];
                    let (sx, sy) = (gap(a.x0, a.x1, b.x0, b.x1), gap(a.y0, a.y1, b.y0, b.y1));
                    if j == i || (sx == 0.0 && sy == 0.0) {
                        continue;
                    }
                    let d = sx.hypot(sy);
                    if best.is_none_or(|b| d < b.0) {
                        best = Some((d, sx, sy));
                    }
                }
            }
        }
        match best {
            Some((_, sx, sy)) if sy < sx => rows += 1,
            Some((_, sx, sy)) if sx < sy => cols += 1,
            _ => {}
        }
    }
    (rows, cols)
}

/// Punctuation-sized marks at the (bottom, top) of their lines. A mark's line is the rows
/// spanned by the character-sized components within a character height of it whose rows
/// include the mark's centre; the mark must have no other ink in its columns within them.
fn punctuation(runs: &Runs, comps: &Components, chars: &[usize], hm: f64) -> (u32, u32) {
    let cell = hm.max(1.0);
    let mut grid: std::collections::HashMap<(i64, i64), Vec<usize>> = Default::default();
    for &i in chars {
        let c = &comps.list[i];
        for gy in (f64::from(c.y0) / cell) as i64..=(f64::from(c.y1 - 1) / cell) as i64 {
            for gx in (f64::from(c.x0) / cell) as i64..=(f64::from(c.x1 - 1) / cell) as i64 {
                grid.entry((gx, gy)).or_default().push(i);
            }
        }
    }
    let min_area = ((hm / 10.0).powi(2)).max(4.0) as u32;
    let reach = hm.ceil() as u32;
    let (mut bottom, mut top) = (0, 0);
    for (k, c) in comps.list.iter().enumerate() {
        let (w, h) = (f64::from(c.width()), f64::from(c.height()));
        if h > 0.4 * hm || w > 0.5 * hm || c.area < min_area {
            continue;
        }
        let cy = f64::from(c.y0 + c.y1) / 2.0;
        // The line: neighbouring characters whose rows hold the mark's centre.
        let (n0, n1) = (c.x0.saturating_sub(reach), c.x1 + reach);
        let (gx0, gx1) = ((f64::from(n0) / cell) as i64, (f64::from(n1) / cell) as i64);
        let gy = (cy / cell) as i64;
        let mut line: Option<(u32, u32)> = None;
        for gx in gx0..=gx1 {
            for dy in -2..=2 {
                for &j in grid.get(&(gx, gy + dy)).into_iter().flatten() {
                    let n = &comps.list[j];
                    let holds = f64::from(n.y0) <= cy && cy < f64::from(n.y1);
                    if holds && n.x1 > n0 && n.x0 < n1 {
                        line = Some(line.map_or((n.y0, n.y1), |(a, b)| (a.min(n.y0), b.max(n.y1))));
                    }
                }
            }
        }
        let Some((a, b)) = line else {
            continue;
        };
        // Alone in its columns within the line (the dot of an i, the dot on top of 文 are not).
        let (x0, x1) = (c.x0.saturating_sub(2), c.x1 + 2);
        let alone = (a..b).all(|y| {
            let row = runs.row(y as usize);
            let first = row.partition_point(|r| r.x1 <= x0);
            row[first..]
                .iter()
                .enumerate()
                .take_while(|(_, r)| r.x0 < x1)
                .all(|(r, _)| comps.of_run[runs.row_start[y as usize] + first + r] as usize == k)
        });
        if !alone {
            continue;
        }
        let rel = (cy - f64::from(a)) / f64::from(b - a);
        if rel > 0.6 {
            bottom += 1;
        } else if rel < 0.4 {
            top += 1;
        }
    }
    (bottom, top)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::label;

    /// Lines of square "characters" with a full stop after every fourth one.
    fn lines(w: usize, h: usize, turned: bool) -> Vec<u8> {
        let mut page = vec![255u8; w * h];
        let mut dot = |x: usize, y: usize, s: usize| {
            for row in page[y * w..].chunks_exact_mut(w).take(s) {
                row[x..x + s].fill(0);
            }
        };
        for line in 0..8 {
            let y = 20 + line * 40;
            for k in 0..12 {
                let x = 20 + k * 30;
                dot(x, y, 20);
                if k % 4 == 3 {
                    dot(x + 23, y + 16, 4);
                }
            }
        }
        if turned {
            page.reverse();
        }
        page
    }

    fn evidence_of(page: &[u8], w: usize) -> Evidence {
        let runs = Runs::of_bilevel(page, None, w);
        let comps = label(&runs);
        evidence(&runs, &comps)
    }

    #[test]
    fn punctuation_shows_which_way_is_up() {
        let (w, h) = (400, 400);
        let upright = evidence_of(&lines(w, h, false), w);
        assert_eq!((upright.bottom, upright.top), (24, 0));
        assert!(!upright.upside_down() && upright.confidence() > 0.8);
        assert!(!upright.sideways());
        let turned = evidence_of(&lines(w, h, true), w);
        assert_eq!((turned.bottom, turned.top), (0, 24));
        assert!(turned.upside_down());
    }

    #[test]
    fn columns_of_characters_are_sideways() {
        let (w, h) = (400, 400);
        let page = lines(w, h, false);
        let mut transposed = vec![255u8; w * h];
        for y in 0..h {
            for x in 0..w {
                transposed[x * w + y] = page[y * w + x];
            }
        }
        assert!(evidence_of(&transposed, w).sideways());
    }

    #[test]
    fn no_text_no_evidence() {
        let page = vec![255u8; 100 * 100];
        assert_eq!(evidence_of(&page, 100), Evidence::default());
        assert_eq!(Evidence::default().confidence(), 0.0);
    }
}
