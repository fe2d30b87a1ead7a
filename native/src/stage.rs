//! One pass of the geometry for `clean_page`: the page analysed, its skew estimated and applied,
//! the paper cropped, the red seals located, the kept part rendered (with the Sauvola block sums
//! and, for colour pages, the OCR channel taken band by band while in cache), binarised and
//! labelled, and the orientation evidence collected.

use crate::analysis::{channel_at, Analysis};
use crate::binarise::{add_band, binarise_with, Binarised, BlockStats, Sauvola};
use crate::border::{self, BorderMap};
use crate::clean::{CleanOptions, MIN_CONFIDENCE, MIN_CORRECTION_DEG};
use crate::components::{label, Components};
use crate::error::KernelError;
use crate::geometry::{round, CropBox, Rotation};
use crate::image::{Image, ImageBuf};
use crate::orient::{self, Evidence};
use crate::quality;
use crate::report;
use crate::rotate::{render_row, FILL};
use crate::seal::{self, ColourPlanes};
use crate::skew::{self, SkewEstimate};
use crate::threads::map_bands;

/// Sauvola window, millimetres, when not given.
const WINDOW_MM: f64 = 4.15;

/// One rendering of the page at a given rotation, binarised and labelled.
pub(crate) struct Stage {
    pub rotation: Rotation,
    pub crop: CropBox,
    pub dpi: f64,
    pub page: ImageBuf,
    /// OCR channel of colour pages: luma, and the red channel inside the seal boxes.
    pub ocr: Option<ImageBuf>,
    /// Red seals, in page pixels.
    pub seals: Vec<CropBox>,
    pub binarised: Binarised,
    pub comps: Components,
    pub evidence: Evidence,
}

/// A page analysed, its skew estimated and corrected, binarised and labelled.
pub(crate) struct Measured {
    pub analysis: Analysis,
    /// Colour measurements (BGR pages).
    pub colour: Option<ColourPlanes>,
    pub skew: SkewEstimate,
    pub deskew_deg: f64,
    pub st: Stage,
}

pub(crate) fn measure(image: Image<'_>, options: &CleanOptions) -> Result<Measured, KernelError> {
    let analysis = Analysis::new(image);
    let colour = image
        .is_colour()
        .then(|| ColourPlanes::new(image, analysis.factor));
    let skew = skew::estimate(&analysis, options.max_skew_deg);
    let deskew_deg = applied(&skew);
    let st = stage(image, &analysis, colour.as_ref(), deskew_deg, options)?;
    Ok(Measured {
        analysis,
        colour,
        skew,
        deskew_deg,
        st,
    })
}

/// The correction applied for a skew estimate: none when too small or too uncertain.
fn applied(skew: &SkewEstimate) -> f64 {
    let apply = skew.confidence >= MIN_CONFIDENCE && skew.angle_deg.abs() >= MIN_CORRECTION_DEG;
    if apply {
        skew.angle_deg
    } else {
        0.0
    }
}

/// Renders, binarises and labels the page rotated by `angle_deg`.
fn stage(
    image: Image<'_>,
    analysis: &Analysis,
    colour: Option<&ColourPlanes>,
    angle_deg: f64,
    options: &CleanOptions,
) -> Result<Stage, KernelError> {
    let parallel = options.threads > 1;
    let rotation = Rotation::new(image.width(), image.height(), angle_deg)?;
    let crop = crop_box(image, analysis, &rotation);
    let dpi = options
        .dpi
        .unwrap_or_else(|| quality::a4_dpi(crop.width(), crop.height()));
    let window = options
        .sauvola_window
        .unwrap_or_else(|| ((WINDOW_MM * dpi / 25.4).round() as usize).clamp(7, 7 * 255));
    let sauvola = Sauvola {
        window,
        k: options.sauvola_k,
    };
    let seals = colour
        .map(|c| report::seals_on_page(&c.seals(dpi), &rotation, crop))
        .unwrap_or_default();
    let (page, ocr, stats) = render(image, &rotation, crop, &seals, sauvola.block(), parallel);
    let plane = ocr.as_ref().unwrap_or(&page).view();
    let binarised = binarise_with(plane.data(), crop.width(), &stats, sauvola.k, parallel);
    let comps = label(&binarised.runs);
    let evidence = if options.orientation {
        orient::evidence(&binarised.runs, &comps)
    } else {
        Evidence::default()
    };
    Ok(Stage {
        rotation,
        crop,
        dpi,
        page,
        ocr,
        seals,
        binarised,
        comps,
        evidence,
    })
}

/// The box of the paper on the canvas of `rotation` (see `border.rs`).
fn crop_box(image: Image<'_>, analysis: &Analysis, rotation: &Rotation) -> CropBox {
    let (w, h) = (image.width(), image.height());
    let cells = BorderMap::Rotated { analysis, rotation }.content_box();
    border::refine(
        cells,
        analysis.factor,
        rotation.dst_size(),
        analysis.threshold,
        |x, y| {
            let (sx, sy) = rotation.page_point(x as f64, y as f64)?;
            let (sx, sy) = (round(sx).max(0) as usize, round(sy).max(0) as usize);
            Some(channel_at(image, sx.min(w - 1), sy.min(h - 1)))
        },
    )
}

/// Renders the `crop` part of the rotated page in bands of `block` rows; each band's OCR
/// channel (colour pages: luma, red inside seals) and Sauvola block sums are taken while it is
/// in cache.
fn render(
    image: Image<'_>,
    rotation: &Rotation,
    crop: CropBox,
    seals: &[CropBox],
    block: usize,
    parallel: bool,
) -> (ImageBuf, Option<ImageBuf>, BlockStats) {
    let (w, h, c) = (crop.width(), crop.height(), image.channels());
    let mut page = ImageBuf::filled(w, h, c, FILL);
    let mut ocr = (c == 3).then(|| ImageBuf::filled(w, h, 1, 0));
    let mut stats = BlockStats::new(w, h, block);
    let ocr_bands: Vec<Option<&mut [u8]>> = match ocr.as_mut() {
        Some(o) => o.data_mut().chunks_mut(w * block).map(Some).collect(),
        None => (0..h.div_ceil(block)).map(|_| None).collect(),
    };
    let bands: Vec<_> = page
        .data_mut()
        .chunks_mut(w * c * block)
        .zip(ocr_bands)
        .zip(stats.bands_mut())
        .collect();
    map_bands(bands, parallel, |((rows, ocr), (b, sum, squares))| {
        for (i, row) in rows.chunks_exact_mut(w * c).enumerate() {
            render_row(image, rotation, crop, b * block + i, row);
        }
        let plane: &[u8] = match ocr {
            Some(ocr) => {
                crate::grey::luma_rows(rows, ocr);
                for (i, (bgr, out)) in rows
                    .chunks_exact(w * 3)
                    .zip(ocr.chunks_exact_mut(w))
                    .enumerate()
                {
                    seal::red_in_seals(bgr, out, b * block + i, seals);
                }
                ocr
            }
            None => rows,
        };
        add_band(plane, w, block, sum, squares);
    });
    (page, ocr, stats)
}
