//! Despeckle: removes small isolated black components (dust, toner specks, sensor noise) from a
//! bilevel page.
//!
//! A component is a speck when it has at most `max_area` pixels and no larger component comes
//! within `keep_radius` pixels of its bounding box. The radius is what spares punctuation and
//! the dots of i and j: they are as small as specks, but always sit next to a letter.

use crate::components::{label, Components, Runs};
use crate::error::KernelError;
use crate::image::{Image, ImageBuf};

/// Despeckle settings, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Despeckle {
    /// Largest component (black pixel count) that may be removed; 0 disables despeckling.
    pub max_area: usize,
    /// A small component this close (in pixels, between bounding boxes) to a larger one is kept.
    pub keep_radius: usize,
}

/// Defaults for 300 dpi: specks up to about 0.6 mm across, kept within 2 mm of text.
impl Default for Despeckle {
    fn default() -> Self {
        Self::for_dpi(300.0)
    }
}

impl Despeckle {
    /// Settings scaled to a resolution: specks up to about 0.6 mm across, spared when within
    /// 2 mm of a larger mark (half a character of body text: the dots of a colon sit that far
    /// from the characters around them).
    pub fn for_dpi(dpi: f64) -> Self {
        let px_per_mm = dpi / 25.4;
        let side = 0.6 * px_per_mm;
        Self {
            max_area: (side * side).round().max(1.0) as usize,
            keep_radius: (2.0 * px_per_mm).round().max(1.0) as usize,
        }
    }

    pub fn check(&self) -> Result<(), KernelError> {
        if self.keep_radius == 0 || self.keep_radius > 4096 {
            return Err(KernelError::Argument(format!(
                "despeckle keep radius must be 1..=4096 pixels, got {}",
                self.keep_radius
            )));
        }
        Ok(())
    }
}

/// Marks the specks among `comps` (true = remove).
pub(crate) fn find_specks(runs: &Runs, comps: &Components, params: &Despeckle) -> Vec<bool> {
    let max_area = params.max_area as u32;
    let small: Vec<bool> = comps.list.iter().map(|c| c.area <= max_area).collect();
    if params.max_area == 0 || !small.iter().any(|&s| s) {
        return vec![false; comps.list.len()];
    }
    // Cells of `radius` pixels that hold a pixel of a larger component.
    let cell = params.keep_radius;
    let (gw, gh) = (runs.width.div_ceil(cell), runs.height.div_ceil(cell));
    let mut big = vec![false; gw * gh];
    for (run, &c) in runs.runs.iter().zip(&comps.of_run) {
        if !small[c as usize] {
            let row = &mut big[(run.y as usize / cell) * gw..][..gw];
            row[run.x0 as usize / cell..=(run.x1 as usize - 1) / cell].fill(true);
        }
    }
    comps
        .list
        .iter()
        .zip(&small)
        .map(|(c, &is_small)| {
            if !is_small {
                return false;
            }
            let r = params.keep_radius;
            let (x0, y0) = (
                (c.x0 as usize).saturating_sub(r),
                (c.y0 as usize).saturating_sub(r),
            );
            let x1 = (c.x1 as usize - 1 + r).min(runs.width - 1);
            let y1 = (c.y1 as usize - 1 + r).min(runs.height - 1);
            let near = (y0 / cell..=y1 / cell).any(|gy| {
                big[gy * gw + x0 / cell..=gy * gw + x1 / cell]
                    .iter()
                    .any(|&b| b)
            });
            !near
        })
        .collect()
}

/// Whitens the runs of the marked components in a bilevel page.
pub(crate) fn erase(bilevel: &mut [u8], runs: &Runs, comps: &Components, remove: &[bool]) {
    for (run, &c) in runs.runs.iter().zip(&comps.of_run) {
        if remove[c as usize] {
            let start = run.y as usize * runs.width;
            bilevel[start + run.x0 as usize..start + run.x1 as usize].fill(255);
        }
    }
}

/// Despeckles a bilevel page (pixels whose luma is below 128 are black); returns a 0/255 page.
pub fn despeckle(image: Image<'_>, params: &Despeckle) -> Result<ImageBuf, KernelError> {
    params.check()?;
    let plane = crate::grey::to_grey(image);
    let (w, h) = (image.width(), image.height());
    let mut data: Vec<u8> = plane
        .view()
        .data()
        .iter()
        .map(|&v| if v < 128 { 0 } else { 255 })
        .collect();
    let runs = Runs::of_bilevel(&data, None, w);
    let comps = label(&runs);
    let remove = find_specks(&runs, &comps, params);
    erase(&mut data, &runs, &comps, &remove);
    ImageBuf::from_vec(data, w, h, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn draw(page: &mut [u8], w: usize, x: usize, y: usize, bw: usize, bh: usize) {
        for row in page[y * w..].chunks_exact_mut(w).take(bh) {
            row[x..x + bw].fill(0);
        }
    }

    #[test]
    fn removes_isolated_specks_and_keeps_dots_near_letters() {
        let (w, h) = (200, 100);
        let mut page = vec![255u8; w * h];
        draw(&mut page, w, 20, 30, 6, 30); // a letter stem
        draw(&mut page, w, 21, 22, 4, 4); // the dot of its i
        draw(&mut page, w, 30, 56, 4, 4); // a full stop after it
        draw(&mut page, w, 120, 50, 3, 3); // dust, far from anything
        page[80 * w + 170] = 0; // a single noisy pixel
        let image = Image::new(&page, w, h, 1).unwrap();
        let params = Despeckle {
            max_area: 30,
            keep_radius: 12,
        };
        let clean = despeckle(image, &params).unwrap();
        let data = clean.view().data();
        assert_eq!(data[23 * w + 22], 0, "dot of the i");
        assert_eq!(data[57 * w + 31], 0, "full stop");
        assert_eq!(data[40 * w + 22], 0, "letter");
        assert_eq!(data[51 * w + 121], 255, "dust");
        assert_eq!(data[80 * w + 170], 255, "noise");
        let off = Despeckle {
            max_area: 0,
            keep_radius: 12,
        };
        assert_eq!(despeckle(image, &off).unwrap().view().data(), &page[..]);
    }

    #[test]
    fn scales_with_resolution() {
        let at300 = Despeckle::for_dpi(300.0);
        let at200 = Despeckle::for_dpi(200.0);
        assert!(at300.max_area > at200.max_area && at300.keep_radius > at200.keep_radius);
        assert_eq!(at300, Despeckle::default());
        let bad = Despeckle {
            max_area: 5,
            keep_radius: 0,
        };
        assert!(bad.check().is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn only_removes_small_components(w in 1usize..60, h in 1usize..60, seed in any::<u64>(),
                                          max_area in 0usize..20, keep_radius in 1usize..20) {
            let mut state = seed | 1;
            let data: Vec<u8> = (0..w * h).map(|_| {
                state ^= state << 13; state ^= state >> 7; state ^= state << 17;
                if state % 5 == 0 { 0 } else { 255 }
            }).collect();
            let image = Image::new(&data, w, h, 1).unwrap();
            let params = Despeckle { max_area, keep_radius };
            let clean = despeckle(image, &params).unwrap();
            let comps = label(&Runs::of_bilevel(&data, None, w));
            let after = label(&Runs::of_bilevel(clean.view().data(), None, w));
            // Large components survive untouched; nothing new appears.
            let big = |c: &crate::components::Component| c.area as usize > max_area;
            let mut before_big: Vec<_> = comps.list.iter().filter(|c| big(c)).collect();
            let mut after_big: Vec<_> = after.list.iter().filter(|c| big(c)).collect();
            before_big.sort_by_key(|c| (c.y0, c.x0));
            after_big.sort_by_key(|c| (c.y0, c.x0));
            prop_assert_eq!(before_big, after_big);
            for (a, b) in clean.view().data().iter().zip(&data) {
                prop_assert!(*a == 255 || *b == 0);
            }
        }
    }
}
