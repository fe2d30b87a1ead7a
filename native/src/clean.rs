//! The whole clean-up chain in one call: skew, orientation, border crop, rotation, Sauvola
//! binarisation, despeckle, seals, blank page, quality metrics, thumbnail and perceptual hash.
//!
//! Full-resolution passes over a grey page: one to reduce it for analysis; one to render the
//! kept part of the deskewed page, summing the Sauvola block statistics of each band of rows
//! while it is in cache (for colour pages, also taking the OCR channel: luma, red in seals);
//! one to threshold it, collecting the runs of black pixels on the way; one for the thumbnail
//! and one to count the ink of the bilevel page for the perceptual hash. Components,
//! orientation, despeckle, punched holes, blank page and metrics work on the runs and the
//! reduced page. A page found upside down is turned by reversing its buffers; a page whose
//! lines run down is turned a quarter (exactly) and measured again, which costs a second pass
//! for those pages.

use crate::binarise::Sauvola;
use crate::despeckle::{erase, find_specks, Despeckle};
use crate::error::KernelError;
use crate::holes;
use crate::image::{Image, ImageBuf};
use crate::quality::{self, Flags, Metrics};
use crate::report::{self, Report};
use crate::skew::{check_max_skew, DEFAULT_MAX_SKEW_DEG};
use crate::stage::{measure, Measured};
use crate::threads::{check_threads, with_pool};
use crate::thumbnail::{thumbnail, DEFAULT_THUMBNAIL_SIDE};

/// Skew estimates smaller than this (in degrees) are not corrected.
pub const MIN_CORRECTION_DEG: f64 = 0.05;
/// Skew estimates less confident than this are not corrected.
pub const MIN_CONFIDENCE: f64 = 0.3;

/// Settings of [`clean_page`].
#[derive(Clone, Copy, Debug)]
pub struct CleanOptions {
    /// Bound on the long side of the thumbnail.
    pub thumbnail_max_side: usize,
    /// Skew search range, degrees either side of level.
    pub max_skew_deg: f64,
    /// Worker threads (1 = the calling thread only).
    pub threads: usize,
    /// Resolution of the scan when known; otherwise estimated from the page size (A4).
    pub dpi: Option<f64>,
    /// Sauvola window in pixels; `None`: about 4 mm at the page's resolution.
    pub sauvola_window: Option<usize>,
    /// Sauvola sensitivity.
    pub sauvola_k: f64,
    /// Largest speck removed, pixels; `None`: about 0.6 mm across at the page's resolution.
    pub speck_max_area: Option<usize>,
    /// Specks this close to a larger mark are kept, pixels; `None`: about 2 mm.
    pub speck_keep_radius: Option<usize>,
    /// Detect and correct quarter-turn orientation (upside-down and sideways pages).
    pub orientation: bool,
    /// Keep red seals in the bilevel copy as a 50% halftone (else they fade with the red
    /// channel it is made from).
    pub seal_halftone: bool,
}

impl Default for CleanOptions {
    fn default() -> Self {
        Self {
            thumbnail_max_side: DEFAULT_THUMBNAIL_SIDE,
            max_skew_deg: DEFAULT_MAX_SKEW_DEG,
            threads: 1,
            dpi: None,
            sauvola_window: None,
            sauvola_k: crate::binarise::DEFAULT_K,
            speck_max_area: None,
            speck_keep_radius: None,
            orientation: true,
            seal_halftone: true,
        }
    }
}

impl CleanOptions {
    fn check(&self) -> Result<(), KernelError> {
        check_max_skew(self.max_skew_deg)?;
        check_threads(self.threads)?;
        if self.thumbnail_max_side == 0 {
            return Err(KernelError::Argument(
                "thumbnail max side must be at least 1".to_owned(),
            ));
        }
        if let Some(dpi) = self.dpi {
            if !(dpi.is_finite() && (10.0..=10_000.0).contains(&dpi)) {
                return Err(KernelError::Argument(format!(
                    "dpi must be between 10 and 10000, got {dpi}"
                )));
            }
        }
        let window = self
            .sauvola_window
            .unwrap_or(crate::binarise::DEFAULT_WINDOW);
        Sauvola {
            window,
            k: self.sauvola_k,
        }
        .check()?;
        Despeckle {
            max_area: 0,
            keep_radius: self.speck_keep_radius.unwrap_or(1),
        }
        .check()
    }
}

/// Result of [`clean_page`].
#[derive(Clone, Debug)]
pub struct CleanedPage {
    /// Upright, deskewed and cropped page, same channels as the input.
    pub image: ImageBuf,
    /// OCR input of colour pages: the luma of `image`, and its red channel inside the seal boxes
    /// (OCR reads the text under a seal, not the seal); `None` for grey pages, whose OCR input is
    /// `image` itself.
    pub ocr_input: Option<ImageBuf>,
    /// Sauvola-binarised, despeckled OCR channel (0 = black, 255 = white).
    pub bilevel: ImageBuf,
    /// `image` shrunk so that its long side is at most the configured bound.
    pub thumbnail: ImageBuf,
    pub report: Report,
}

/// Cleans one scanned page.
pub fn clean_page(image: Image<'_>, options: &CleanOptions) -> Result<CleanedPage, KernelError> {
    options.check()?;
    with_pool(options.threads, || clean(image, options))
}

fn clean(image: Image<'_>, options: &CleanOptions) -> Result<CleanedPage, KernelError> {
    let first = measure(image, options)?;
    if options.orientation && first.st.evidence.sideways() {
        // The lines run down the page: turn it a quarter (exactly), measure again, and keep the
        // turn if the lines then run along the rows.
        let turned = crate::quarter::rotate_quarter(image, 1);
        let second = measure(turned.view(), options)?;
        if !second.st.evidence.sideways() {
            return finish(turned.view(), second, 90, options);
        }
    }
    finish(image, first, 0, options)
}

/// Everything after the geometry: up or down, despeckle, holes, seals, blank page, metrics,
/// thumbnail and hash. `image` has been turned by `quarter` degrees already.
fn finish(
    image: Image<'_>,
    measured: Measured,
    quarter: u32,
    options: &CleanOptions,
) -> Result<CleanedPage, KernelError> {
    let Measured {
        analysis,
        colour,
        skew,
        deskew_deg,
        mut st,
    } = measured;
    let (w, h) = (st.crop.width(), st.crop.height());
    let plane = analysis.plane.view();
    let (paper, ink, mean) = quality::levels(plane.data(), &analysis.border, analysis.threshold);
    let ocr_plane = st.ocr.as_ref().unwrap_or(&st.page).view();
    let sharpness = quality::sharpness(ocr_plane.data(), &st.binarised.runs, paper - ink);
    let blur_mm = quality::blur_mm(sharpness, st.dpi);
    // Punctuation on a badly blurred page is no evidence: such a page is left as it is.
    let flip =
        options.orientation && st.evidence.upside_down() && blur_mm <= quality::limits::BLURRY_MM;
    let orientation_deg = if flip { quarter + 180 } else { quarter };

    let scaled = Despeckle::for_dpi(st.dpi);
    let despeckle = Despeckle {
        max_area: options.speck_max_area.unwrap_or(scaled.max_area),
        keep_radius: options.speck_keep_radius.unwrap_or(scaled.keep_radius),
    };
    let runs = &st.binarised.runs;
    let mut specks = find_specks(runs, &st.comps, &despeckle);
    let ocr_plane = st.ocr.as_ref().unwrap_or(&st.page).view();
    let holes = holes::find_holes(&st.comps, ocr_plane.data(), w, analysis.threshold, st.dpi);
    holes::mark_inside(&holes, &st.comps, &mut specks);
    erase(st.binarised.bilevel.data_mut(), runs, &st.comps, &specks);
    for hole in &holes {
        holes::paint(hole, &mut st.page);
        if let Some(ocr) = st.ocr.as_mut() {
            holes::paint(hole, ocr);
        }
        holes::whiten(hole, &mut st.binarised.bilevel);
    }

    let black: u64 = st
        .comps
        .list
        .iter()
        .zip(&specks)
        .filter(|(_, &s)| !s)
        .map(|(c, _)| u64::from(c.area))
        .sum();
    let content = quality::content_ink(&st.comps, &specks, paper, (w, h));
    let seal_boxes = std::mem::take(&mut st.seals);
    if options.seal_halftone {
        crate::seal::halftone(&st.page, &mut st.binarised.bilevel, &seal_boxes);
    }
    let area = (w * h) as f64;
    let blank = (content as f64) < quality::limits::BLANK_INK * area && seal_boxes.is_empty();
    let metrics = Metrics {
        sharpness,
        blur_mm,
        contrast: (paper - ink) / 255.0,
        brightness: mean / 255.0,
        paper_level: paper / 255.0,
        skew_deg: skew.angle_deg,
        residual_skew_deg: skew.angle_deg - deskew_deg,
        effective_dpi: st.dpi,
        border_share: (1.0
            - st.rotation.page_area_in(st.crop) / (image.width() * image.height()) as f64)
            .clamp(0.0, 1.0),
        ink_coverage: black as f64 / area,
        colour_share: colour.as_ref().map_or(0.0, |c| c.colour_share),
    };
    let flags = report::flags(
        &metrics,
        &skew,
        orientation_deg,
        blank,
        !seal_boxes.is_empty(),
    );

    let mut page = st.page;
    let mut ocr_input = st.ocr;
    let mut bilevel = st.binarised.bilevel;
    let (mut crop, mut seal_boxes) = (st.crop, seal_boxes);
    if flip {
        crate::quarter::turn_half(&mut page);
        if let Some(o) = ocr_input.as_mut() {
            crate::quarter::turn_half(o);
        }
        crate::quarter::turn_half(&mut bilevel);
        let (cw, ch) = st.rotation.dst_size();
        crop = report::mirror(crop, cw, ch);
        for b in &mut seal_boxes {
            *b = report::mirror(*b, w, h);
        }
    }
    let thumb = thumbnail(page.view(), options.thumbnail_max_side)?;
    let phash = crate::phash::phash_bilevel(bilevel.view().data(), bilevel.width());
    let report = Report {
        deskew_deg,
        skew_confidence: skew.confidence,
        orientation_deg,
        orientation_confidence: st.evidence.confidence(),
        crop_box: crop,
        seal_boxes,
        blank,
        phash,
        metrics,
        flags: Flags(flags),
    };
    Ok(CleanedPage {
        image: page,
        ocr_input,
        bilevel,
        thumbnail: thumb,
        report,
    })
}

#[cfg(test)]
#[path = "clean_tests.rs"]
mod tests;
