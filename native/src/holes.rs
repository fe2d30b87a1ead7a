//! Punched holes: the scanner bed or lid shadow seen through filing holes near the paper edge.
//!
//! A hole is a solid dark disc of 4 to 9 mm (ISO 838 holes are 6 mm) within 25 mm of an edge of
//! the cropped page. Candidates come from the components of the bilevel page (Sauvola hollows a
//! large solid disc into a ring, but its box stays); the grey page confirms that the disc is dark
//! throughout, which a letter O or a drawn circle is not. Holes are painted over with the paper
//! colour around them, whitened in the bilevel page and kept out of the ink counts.

use crate::components::Components;
use crate::geometry::CropBox;
use crate::image::ImageBuf;

const MIN_DIAMETER_MM: f64 = 4.0;
const MAX_DIAMETER_MM: f64 = 9.0;
/// Holes sit within this distance of the paper edge.
const EDGE_ZONE_MM: f64 = 25.0;
/// Bounding boxes of holes are square within this ratio.
const MAX_ASPECT: f64 = 1.3;
/// Painted discs are this much larger than the hole (its soft edge).
const PAINT_MARGIN: f64 = 1.15;

/// A hole on the cleaned page: centre and radius in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Hole {
    pub x: f64,
    pub y: f64,
    pub r: f64,
}

/// Finds the holes among the components of a `width x height` page whose OCR channel is
/// `plane`; values below `dark` are dark.
pub(crate) fn find_holes(
    comps: &Components,
    plane: &[u8],
    width: usize,
    dark: u8,
    dpi: f64,
) -> Vec<Hole> {
    let height = plane.len() / width.max(1);
    let mm = dpi / 25.4;
    let (min, max, zone) = (
        MIN_DIAMETER_MM * mm,
        MAX_DIAMETER_MM * mm,
        EDGE_ZONE_MM * mm,
    );
    comps
        .list
        .iter()
        .filter_map(|c| {
            let (w, h) = (f64::from(c.width()), f64::from(c.height()));
            if w.min(h) < min || w.max(h) > max || w.max(h) > MAX_ASPECT * w.min(h) {
                return None;
            }
            let (x, y) = (f64::from(c.x0 + c.x1) / 2.0, f64::from(c.y0 + c.y1) / 2.0);
            let edge = x.min(y).min(width as f64 - x).min(height as f64 - y);
            let hole = Hole {
                x,
                y,
                r: (w + h) / 4.0,
            };
            (edge <= zone && solid(&hole, plane, width, height, dark)).then_some(hole)
        })
        .collect()
}

/// True when the disc is dark at its centre and at 16 points on each of two inner circles.
fn solid(hole: &Hole, plane: &[u8], width: usize, height: usize, dark: u8) -> bool {
    let at = |x: f64, y: f64| {
        let (x, y) = (x.round().max(0.0) as usize, y.round().max(0.0) as usize);
        plane[y.min(height - 1) * width + x.min(width - 1)]
    };
    if at(hole.x, hole.y) >= dark {
        return false;
    }
    (0..16).all(|k| {
        let (s, c) = (f64::from(k) * std::f64::consts::PI / 8.0).sin_cos();
        [0.35, 0.7]
            .iter()
            .all(|&f| at(hole.x + f * hole.r * c, hole.y + f * hole.r * s) < dark)
    })
}

/// Pixels of the disc a hole is painted over with, clipped to a `width x height` page.
fn disc(hole: &Hole, width: usize, height: usize) -> impl Iterator<Item = (usize, usize)> {
    let r = hole.r * PAINT_MARGIN;
    let b = CropBox {
        x0: (hole.x - r).floor().max(0.0) as usize,
        y0: (hole.y - r).floor().max(0.0) as usize,
        x1: ((hole.x + r).ceil().max(0.0) as usize).min(width),
        y1: ((hole.y + r).ceil().max(0.0) as usize).min(height),
    };
    let (hx, hy) = (hole.x, hole.y);
    (b.y0..b.y1).flat_map(move |y| {
        (b.x0..b.x1).filter_map(move |x| {
            let (dx, dy) = (x as f64 + 0.5 - hx, y as f64 + 0.5 - hy);
            (dx * dx + dy * dy <= r * r).then_some((x, y))
        })
    })
}

/// Paints a hole with the median colour of a ring of paper around it.
pub(crate) fn paint(hole: &Hole, page: &mut ImageBuf) {
    let (w, h, c) = (page.width(), page.height(), page.channels());
    let mut samples: Vec<Vec<u8>> = vec![Vec::new(); c];
    for k in 0..48 {
        let (s, co) = (f64::from(k) * std::f64::consts::PI / 24.0).sin_cos();
        for f in [1.4, 1.6] {
            let (x, y) = (hole.x + f * hole.r * co, hole.y + f * hole.r * s);
            if x >= 0.0 && y >= 0.0 && (x as usize) < w && (y as usize) < h {
                let px = &page.view().row(y as usize)[x as usize * c..][..c];
                for (ch, &v) in px.iter().enumerate() {
                    samples[ch].push(v);
                }
            }
        }
    }
    let fill: Vec<u8> = samples
        .iter_mut()
        .map(|s| {
            s.sort_unstable();
            s.get(s.len() * 3 / 4).copied().unwrap_or(255)
        })
        .collect();
    let data = page.data_mut();
    for (x, y) in disc(hole, w, h) {
        data[(y * w + x) * c..][..c].copy_from_slice(&fill);
    }
}

/// Whitens a hole in a bilevel page.
pub(crate) fn whiten(hole: &Hole, bilevel: &mut ImageBuf) {
    let (w, h) = (bilevel.width(), bilevel.height());
    let data = bilevel.data_mut();
    for (x, y) in disc(hole, w, h) {
        data[y * w + x] = 255;
    }
}

/// Marks the components that lie inside a hole.
pub(crate) fn mark_inside(holes: &[Hole], comps: &Components, marks: &mut [bool]) {
    for (c, mark) in comps.list.iter().zip(marks.iter_mut()) {
        let (x, y) = (f64::from(c.x0 + c.x1) / 2.0, f64::from(c.y0 + c.y1) / 2.0);
        let inside = holes.iter().any(|hole| {
            let r = hole.r * PAINT_MARGIN;
            (x - hole.x).hypot(y - hole.y) <= r
                && f64::from(c.width().max(c.height())) <= 2.0 * r + 1.0
        });
        *mark |= inside;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::{label, Runs};

    /// A 300 dpi strip of page with a 6 mm hole (dark disc) 12 mm from the left edge, a ring
    /// of the same size (a drawn circle) and a hole-sized disc in the middle of the page.
    fn page() -> (ImageBuf, Vec<u8>) {
        let (w, h) = (1200, 1000);
        let mut page = ImageBuf::filled(w, h, 1, 235);
        let r = 6.0 * 300.0 / 25.4 / 2.0;
        for (i, px) in page.data_mut().iter_mut().enumerate() {
            let (x, y) = ((i % w) as f64, (i / w) as f64);
            let d1 = (x - 142.0).hypot(y - 100.0);
            let d2 = (x - 142.0).hypot(y - 300.0);
            let d3 = (x - 600.0).hypot(y - 500.0);
            if d1 < r || (d2 < r && d2 > r - 6.0) || d3 < r {
                *px = 25;
            }
        }
        let bilevel = page
            .view()
            .data()
            .iter()
            .map(|&v| if v < 128 { 0 } else { 255 })
            .collect();
        (page, bilevel)
    }

    #[test]
    fn finds_solid_discs_near_the_edge_only() {
        let (page, bilevel) = page();
        let comps = label(&Runs::of_bilevel(&bilevel, None, page.width()));
        let holes = find_holes(&comps, page.view().data(), page.width(), 141, 300.0);
        assert_eq!(holes.len(), 1, "{holes:?}");
        assert!((holes[0].x - 142.0).abs() < 1.0 && (holes[0].y - 100.0).abs() < 1.0);
        let mut marks = vec![false; comps.list.len()];
        mark_inside(&holes, &comps, &mut marks);
        assert_eq!(marks.iter().filter(|&&m| m).count(), 1);
    }

    #[test]
    fn painting_restores_the_paper() {
        let (mut page, bilevel) = page();
        let comps = label(&Runs::of_bilevel(&bilevel, None, page.width()));
        let holes = find_holes(&comps, page.view().data(), page.width(), 141, 300.0);
        paint(&holes[0], &mut page);
        assert_eq!(page.view().row(100)[142], 235);
        assert_eq!(page.view().row(100)[142 + 34], 235);
        let mut b = ImageBuf::from_vec(bilevel, page.width(), page.height(), 1).unwrap();
        whiten(&holes[0], &mut b);
        assert!(b.view().row(100)[100..180].iter().all(|&v| v == 255));
    }
}
