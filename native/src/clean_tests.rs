//! Tests of `clean.rs` (kept apart so that the chain itself reads in one screen or two).

use super::*;
use crate::geometry::CropBox;
use crate::geometry::Rotation;
use crate::grey::to_grey;
use crate::testpage::{skewed_text_page, TextPage};
use proptest::prelude::*;

#[test]
fn straightens_and_crops_a_sheet_on_the_scanner_bed() {
    let spec = TextPage {
        angle_deg: 2.5,
        bed: 50,
        ..TextPage::default()
    };
    let page = skewed_text_page(&spec);
    let cleaned = clean_page(page.view(), &CleanOptions::default()).unwrap();
    let r = &cleaned.report;
    assert!((r.deskew_deg - 2.5).abs() < 0.1, "{}", r.deskew_deg);
    assert!(r.skew_confidence > 0.5);
    assert_eq!(r.orientation_deg, 0);
    assert!(cleaned.ocr_input.is_none());
    // The sheet, in canvas coordinates, is the page rectangle less the bed.
    let (cw, ch) = Rotation::new(spec.width, spec.height, r.deskew_deg)
        .unwrap()
        .dst_size();
    let (ox, oy) = ((cw - spec.width) / 2, (ch - spec.height) / 2);
    let sheet = CropBox {
        x0: ox + spec.bed,
        y0: oy + spec.bed,
        x1: ox + spec.width - spec.bed,
        y1: oy + spec.height - spec.bed,
    };
    let b = r.crop_box;
    for (got, want) in [(b.x0, sheet.x0), (b.y0, sheet.y0)] {
        assert!(
            got <= want + 1 && got + 4 >= want,
            "{b:?} vs sheet {sheet:?}"
        );
    }
    for (got, want) in [(b.x1, sheet.x1), (b.y1, sheet.y1)] {
        assert!(
            got + 1 >= want && got <= want + 4,
            "{b:?} vs sheet {sheet:?}"
        );
    }
    assert_eq!(
        (cleaned.image.width(), cleaned.image.height()),
        (b.width(), b.height())
    );
    assert_eq!(
        (cleaned.bilevel.width(), cleaned.bilevel.height()),
        (b.width(), b.height())
    );
    let kept = (sheet.width() * sheet.height()) as f64 / (spec.width * spec.height) as f64;
    let share = r.metrics.border_share;
    assert!((share - (1.0 - kept)).abs() < 0.01, "{share}");
    assert!(cleaned.thumbnail.width().max(cleaned.thumbnail.height()) <= 320);
    assert!(!r.blank);
    // A 1240 x 1754 page is A4 at 150 dpi.
    assert_eq!(r.flags.names(), ["low_dpi"]);
}

#[test]
fn scan_edge_strips_are_trimmed() {
    let spec = TextPage {
        angle_deg: -1.0,
        border: 40,
        ..TextPage::default()
    };
    let page = skewed_text_page(&spec);
    let cleaned = clean_page(page.view(), &CleanOptions::default()).unwrap();
    let r = &cleaned.report;
    let (cw, ch) = Rotation::new(spec.width, spec.height, r.deskew_deg)
        .unwrap()
        .dst_size();
    let b = r.crop_box;
    // The strips tilt by the deskew: the crop lies between their inner and outer edges.
    let (ox, oy) = ((cw - spec.width) / 2, (ch - spec.height) / 2);
    assert!(b.x0 > ox && b.x0 < ox + 60, "{b:?}");
    assert!(b.y0 > oy && b.y0 < oy + 60, "{b:?}");
    assert!(b.x1 < cw - ox && b.x1 + 60 > cw - ox, "{b:?}");
    assert!(b.y1 < ch - oy && b.y1 + 60 > ch - oy, "{b:?}");
}

#[test]
fn a_level_page_without_border_is_kept_whole() {
    let page = skewed_text_page(&TextPage::default());
    let cleaned = clean_page(page.view(), &CleanOptions::default()).unwrap();
    let r = &cleaned.report;
    assert_eq!((r.deskew_deg, r.orientation_deg), (0.0, 0));
    assert_eq!(r.crop_box, CropBox::full(page.width(), page.height()));
    assert_eq!(cleaned.image, page);
    assert_eq!(r.metrics.border_share, 0.0);
    assert!((r.metrics.effective_dpi - 150.0).abs() < 1.0);
    // The bars of the test page come out black, the paper white.
    let ink = page.view().data().iter().filter(|&&v| v < 128).count();
    let black = cleaned
        .bilevel
        .view()
        .data()
        .iter()
        .filter(|&&v| v == 0)
        .count();
    assert!(black.abs_diff(ink) * 100 < ink, "{black} vs {ink}");
}

#[test]
fn colour_pages_are_read_in_luma() {
    let grey = skewed_text_page(&TextPage::default());
    let bgr: Vec<u8> = grey
        .view()
        .data()
        .iter()
        .flat_map(|&v| [v, v / 2, v])
        .collect();
    let page = ImageBuf::from_vec(bgr, grey.width(), grey.height(), 3).unwrap();
    let cleaned = clean_page(page.view(), &CleanOptions::default()).unwrap();
    assert_eq!(cleaned.image.channels(), 3);
    assert_eq!(cleaned.ocr_input.unwrap(), to_grey(cleaned.image.view()));
    assert!(cleaned.report.metrics.colour_share > 0.5);
}

#[test]
fn blank_pages_are_blank_and_text_pages_are_not() {
    let mut page = ImageBuf::filled(1240, 1754, 1, 235);
    let text = clean_page(
        skewed_text_page(&TextPage::default()).view(),
        &CleanOptions::default(),
    );
    assert!(!text.unwrap().report.blank);
    // Specks and a faint ghost do not make a page content.
    let w = page.width();
    for (i, px) in page.data_mut().iter_mut().enumerate() {
        let (x, y) = (i % w, i / w);
        if x % 97 == 0 && y % 89 == 0 {
            *px = 20;
        }
        if (300..900).contains(&x) && (400..420).contains(&y) {
            *px = 215;
        }
    }
    let cleaned = clean_page(page.view(), &CleanOptions::default()).unwrap();
    assert!(cleaned.report.blank);
    assert!(cleaned.report.flags.has(Flags::BLANK));
    assert!(!cleaned.report.flags.has(Flags::BLURRY));
}

#[test]
fn upside_down_pages_are_turned() {
    let mut page = skewed_text_page(&TextPage {
        angle_deg: 1.5,
        full_stops: true,
        ..TextPage::default()
    });
    let upright = clean_page(page.view(), &CleanOptions::default()).unwrap();
    assert_eq!(upright.report.orientation_deg, 0);
    crate::quarter::turn_half(&mut page);
    let turned = clean_page(page.view(), &CleanOptions::default()).unwrap();
    let r = &turned.report;
    assert_eq!(r.orientation_deg, 180);
    assert!(r.flags.has(Flags::UPSIDE_DOWN));
    assert!((r.deskew_deg - 1.5).abs() < 0.1, "{}", r.deskew_deg);
    let diff = turned
        .image
        .view()
        .data()
        .iter()
        .zip(upright.image.view().data())
        .filter(|(a, b)| a.abs_diff(**b) > 40)
        .count();
    assert_eq!(
        (turned.image.width(), turned.image.height()),
        (upright.image.width(), upright.image.height())
    );
    assert!(diff * 200 < upright.image.view().data().len(), "{diff}");
    let off = CleanOptions {
        orientation: false,
        ..CleanOptions::default()
    };
    assert_eq!(
        clean_page(page.view(), &off)
            .unwrap()
            .report
            .orientation_deg,
        0
    );
}

#[test]
fn seals_are_found_and_kept_in_the_bilevel_copy() {
    let grey = skewed_text_page(&TextPage::default());
    let (w, h) = (grey.width(), grey.height());
    let mut bgr: Vec<u8> = grey.view().data().iter().flat_map(|&v| [v, v, v]).collect();
    for y in 0..h {
        for x in 0..w {
            let r = (x as f64 - 800.0).hypot(y as f64 - 1300.0);
            if (r - 120.0).abs() < 8.0 {
                bgr[(y * w + x) * 3..][..3].copy_from_slice(&[40, 35, 215]);
            }
        }
    }
    let page = ImageBuf::from_vec(bgr, w, h, 3).unwrap();
    let cleaned = clean_page(page.view(), &CleanOptions::default()).unwrap();
    let r = &cleaned.report;
    assert_eq!(r.seal_boxes.len(), 1, "{:?}", r.seal_boxes);
    assert!(r.flags.has(Flags::SEAL) && !r.blank);
    let s = r.seal_boxes[0];
    assert!(s.x0.abs_diff(672) < 8 && s.y1.abs_diff(1428) < 8, "{s:?}");
    // The ring is in the bilevel copy as a halftone; without it, it is gone (red channel).
    let ring_black = |options: &CleanOptions| {
        let b = clean_page(page.view(), options).unwrap().bilevel;
        (672..688).filter(|&x| b.view().row(1300)[x] == 0).count()
    };
    assert!(ring_black(&CleanOptions::default()) >= 5);
    let plain = CleanOptions {
        seal_halftone: false,
        ..CleanOptions::default()
    };
    assert_eq!(ring_black(&plain), 0);
}

#[test]
fn punched_holes_are_painted_over_and_do_not_count_as_ink() {
    // A blank 300 dpi sheet on the bed, two 6 mm holes 12 mm from its left edge.
    let (w, h) = (2480, 3508);
    let mut page = ImageBuf::filled(w, h, 1, 240);
    let r = 6.0 / 25.4 * 300.0 / 2.0;
    for (i, px) in page.data_mut().iter_mut().enumerate() {
        let (x, y) = ((i % w) as f64, (i / w) as f64);
        let hole = [1000.0, 2500.0]
            .iter()
            .any(|&cy| (x - 170.0).hypot(y - cy) < r);
        if x < 30.0 || hole {
            *px = 20;
        }
    }
    let cleaned = clean_page(page.view(), &CleanOptions::default()).unwrap();
    let x0 = cleaned.report.crop_box.x0;
    assert!(cleaned.report.blank, "{:?}", cleaned.report.metrics);
    for y in [1000, 2500] {
        assert!(cleaned.image.view().row(y)[170 - x0] > 200);
        assert_eq!(cleaned.bilevel.view().row(y)[170 - x0], 255);
    }
}

#[test]
fn rejects_bad_options() {
    let page = ImageBuf::filled(8, 8, 1, 255);
    for options in [
        CleanOptions {
            max_skew_deg: 0.0,
            ..CleanOptions::default()
        },
        CleanOptions {
            threads: 0,
            ..CleanOptions::default()
        },
        CleanOptions {
            thumbnail_max_side: 0,
            ..CleanOptions::default()
        },
        CleanOptions {
            dpi: Some(f64::NAN),
            ..CleanOptions::default()
        },
        CleanOptions {
            sauvola_window: Some(2),
            ..CleanOptions::default()
        },
        CleanOptions {
            sauvola_k: 2.0,
            ..CleanOptions::default()
        },
    ] {
        assert!(matches!(
            clean_page(page.view(), &options),
            Err(KernelError::Argument(_))
        ));
    }
}

#[test]
fn threads_give_identical_results() {
    let page = skewed_text_page(&TextPage {
        angle_deg: -2.2,
        border: 30,
        ..TextPage::default()
    });
    let one = clean_page(page.view(), &CleanOptions::default()).unwrap();
    let three = CleanOptions {
        threads: 3,
        ..CleanOptions::default()
    };
    let three = clean_page(page.view(), &three).unwrap();
    assert_eq!(one.image, three.image);
    assert_eq!(one.bilevel, three.bilevel);
    assert_eq!(one.report, three.report);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]
    #[test]
    fn any_small_page_is_cleaned(w in 1usize..70, h in 1usize..70, colour in any::<bool>(),
                                 seed in any::<u64>()) {
        let c = if colour { 3 } else { 1 };
        let mut state = seed | 1;
        let data = (0..w * h * c).map(|_| {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            if state % 3 == 0 { (state >> 8) as u8 } else { 255 }
        }).collect();
        let page = ImageBuf::from_vec(data, w, h, c).unwrap();
        let cleaned = clean_page(page.view(), &CleanOptions::default()).unwrap();
        let r = &cleaned.report;
        let b = r.crop_box;
        let total = f64::from(r.orientation_deg) + r.deskew_deg;
        let (cw, ch) = Rotation::new(w, h, total).unwrap().dst_size();
        prop_assert!(b.x0 < b.x1 && b.x1 <= cw && b.y0 < b.y1 && b.y1 <= ch);
        let size = |i: &ImageBuf| (i.width(), i.height());
        prop_assert_eq!(size(&cleaned.image), (b.width(), b.height()));
        prop_assert_eq!(size(&cleaned.bilevel), (b.width(), b.height()));
        prop_assert!((0.0..=1.0).contains(&r.metrics.border_share));
        prop_assert!((0.0..=1.0).contains(&r.skew_confidence));
        prop_assert!((0.0..=1.0).contains(&r.metrics.ink_coverage));
        for s in &r.seal_boxes {
            prop_assert!(s.x1 <= b.width() && s.y1 <= b.height());
        }
    }
}
