//! Exact turns by quarters: pure pixel moves, no interpolation.

use crate::image::{Image, ImageBuf};

/// Turns a page by `turns` quarter turns counter-clockwise (negative turns go clockwise);
/// the result matches `numpy.rot90(image, turns)`.
pub fn rotate_quarter(image: Image<'_>, turns: i64) -> ImageBuf {
    let (w, h, c) = (image.width(), image.height(), image.channels());
    let turns = turns.rem_euclid(4);
    let (out_w, out_h) = if turns % 2 == 0 { (w, h) } else { (h, w) };
    let mut out = ImageBuf::filled(out_w, out_h, c, 0);
    let data = image.data();
    // Source pixel index for output pixel (x, y).
    let source = |x: usize, y: usize| match turns {
        0 => y * w + x,
        1 => x * w + (w - 1 - y),
        2 => (h - 1 - y) * w + (w - 1 - x),
        _ => (h - 1 - x) * w + y,
    };
    const TILE: usize = 64;
    let out_data = out.data_mut();
    for ty in (0..out_h).step_by(TILE) {
        for tx in (0..out_w).step_by(TILE) {
            for y in ty..(ty + TILE).min(out_h) {
                for x in tx..(tx + TILE).min(out_w) {
                    let (s, d) = (source(x, y) * c, (y * out_w + x) * c);
                    out_data[d..d + c].copy_from_slice(&data[s..s + c]);
                }
            }
        }
    }
    out
}

/// Turns an image by half a turn in place (the pixel order reversed, channels kept).
pub(crate) fn turn_half(image: &mut ImageBuf) {
    let c = image.channels();
    let data = image.data_mut();
    data.reverse();
    if c > 1 {
        for px in data.chunks_exact_mut(c) {
            px.reverse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gradient(w: usize, h: usize, c: usize) -> ImageBuf {
        let data = (0..w * h * c).map(|i| (i * 7 % 251) as u8).collect();
        ImageBuf::from_vec(data, w, h, c).unwrap()
    }

    #[test]
    fn quarter_turns_move_corners() {
        // 2 x 3 grey: [[1, 2, 3], [4, 5, 6]]
        let data = [1, 2, 3, 4, 5, 6];
        let page = Image::new(&data, 3, 2, 1).unwrap();
        assert_eq!(rotate_quarter(page, 1).view().data(), &[3, 6, 2, 5, 1, 4]);
        assert_eq!(rotate_quarter(page, 2).view().data(), &[6, 5, 4, 3, 2, 1]);
        assert_eq!(rotate_quarter(page, -1).view().data(), &[4, 1, 5, 2, 6, 3]);
        assert_eq!(rotate_quarter(page, 4).view().data(), &data);
    }

    #[test]
    fn half_turn_in_place_matches_quarter_turns() {
        let buf = ImageBuf::from_vec((0..24).collect(), 4, 2, 3).unwrap();
        let mut turned = buf.clone();
        turn_half(&mut turned);
        assert_eq!(turned, rotate_quarter(buf.view(), 2));
    }

    proptest! {
        #[test]
        fn quarter_turns_compose(turns in -8i64..8, w in 1usize..12, h in 1usize..12) {
            let page = gradient(w, h, 3);
            let there = rotate_quarter(page.view(), turns);
            prop_assert_eq!(rotate_quarter(there.view(), -turns), page);
        }
    }
}
