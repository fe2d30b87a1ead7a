//! Sauvola statistics over blocks: per-block sums of values and squared values (the page is
//! read once, in bands of rows that the renderer can fill while they are in cache), and the
//! thresholds at block centres from integral images over the blocks.

use multiversion::multiversion;

/// Blocks per window side; the window is rounded to a multiple of this many blocks.
pub(crate) const BLOCKS_PER_WINDOW: usize = 7;
/// Dynamic range of the standard deviation for 8-bit pages.
const R: f64 = 128.0;

/// Per-block sums of values and squared values of a `width x height` plane.
pub(crate) struct BlockStats {
    pub(crate) block: usize,
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) cols: usize,
    pub(crate) rows: usize,
    pub(crate) sum: Vec<u32>,
    pub(crate) squares: Vec<u32>,
}

impl BlockStats {
    pub fn new(width: usize, height: usize, block: usize) -> Self {
        let (cols, rows) = (width.div_ceil(block), height.div_ceil(block));
        Self {
            block,
            width,
            height,
            cols,
            rows,
            sum: vec![0; cols * rows],
            squares: vec![0; cols * rows],
        }
    }

    /// Per block row: the band of page rows it covers and its sums (for parallel filling).
    pub fn bands_mut(&mut self) -> impl Iterator<Item = (usize, &mut [u32], &mut [u32])> {
        let cols = self.cols;
        self.sum
            .chunks_exact_mut(cols)
            .zip(self.squares.chunks_exact_mut(cols))
            .enumerate()
            .map(|(i, (s, q))| (i, s, q))
    }

    /// Fills the whole table from a plane (one pass).
    pub fn of_plane(plane: &[u8], width: usize, height: usize, block: usize) -> Self {
        let mut stats = Self::new(width, height, block);
        let band = width * block;
        for (i, sum, squares) in stats.bands_mut() {
            let rows = &plane[i * band..((i + 1) * band).min(plane.len())];
            add_band(rows, width, block, sum, squares);
        }
        stats
    }
}

/// Adds the sums of one band of rows (at most `block` rows of `width` pixels) to its block row.
#[multiversion(targets("x86_64+avx2"))]
pub(crate) fn add_band(
    rows: &[u8],
    width: usize,
    block: usize,
    sum: &mut [u32],
    squares: &mut [u32],
) {
    let mut col_sum = vec![0u32; width];
    let mut col_sq = vec![0u32; width];
    for row in rows.chunks_exact(width) {
        for ((s, q), &v) in col_sum.iter_mut().zip(col_sq.iter_mut()).zip(row) {
            // Squares of bytes fit 16 bits: a 16-bit multiply, then widen.
            let v = u16::from(v);
            *s += u32::from(v);
            *q += u32::from(v * v);
        }
    }
    for (((s, q), cs), cq) in sum
        .iter_mut()
        .zip(squares.iter_mut())
        .zip(col_sum.chunks(block))
        .zip(col_sq.chunks(block))
    {
        *s += cs.iter().sum::<u32>();
        *q += cq.iter().sum::<u32>();
    }
}

/// Thresholds at block centres (floored, at most 254), from the window of `2r + 1` blocks
/// around each block (clipped to the page).
pub(crate) fn block_thresholds(stats: &BlockStats, k: f64) -> Vec<u8> {
    let (cols, rows, block) = (stats.cols, stats.rows, stats.block);
    let r = BLOCKS_PER_WINDOW / 2;
    let window = |i: usize, n: usize| (i.saturating_sub(r), (i + r + 1).min(n));
    // Pixels spanned by the blocks [a, b) of a side of `size` pixels, inverted.
    let inverse =
        |(a, b): (usize, usize), size: usize| 1.0 / ((b * block).min(size) - a * block) as f64;
    let inv_cols: Vec<f64> = (0..cols)
        .map(|j| inverse(window(j, cols), stats.width))
        .collect();
    // Integral images down the block columns: entry (i, j) sums blocks [0, i) of column j.
    let mut down_s = vec![0u64; (rows + 1) * cols];
    let mut down_q = vec![0u64; (rows + 1) * cols];
    for i in 0..rows {
        for j in 0..cols {
            let (above, at) = (i * cols + j, (i + 1) * cols + j);
            down_s[at] = down_s[above] + u64::from(stats.sum[above]);
            down_q[at] = down_q[above] + u64::from(stats.squares[above]);
        }
    }
    let mut out = Vec::with_capacity(rows * cols);
    let (mut across_s, mut across_q) = (vec![0u64; cols + 1], vec![0u64; cols + 1]);
    for i in 0..rows {
        let (i0, i1) = window(i, rows);
        let inv_rows = inverse((i0, i1), stats.height);
        // Sums over the window's rows, then running sums across the columns.
        for j in 0..cols {
            let s = down_s[i1 * cols + j] - down_s[i0 * cols + j];
            let q = down_q[i1 * cols + j] - down_q[i0 * cols + j];
            across_s[j + 1] = across_s[j] + s;
            across_q[j + 1] = across_q[j] + q;
        }
        for (j, inv_cols) in inv_cols.iter().enumerate() {
            let (j0, j1) = window(j, cols);
            let inv = inv_rows * inv_cols;
            let mean = (across_s[j1] - across_s[j0]) as f64 * inv;
            let var = ((across_q[j1] - across_q[j0]) as f64 * inv - mean * mean).max(0.0);
            let t = mean * (1.0 + k * (var.sqrt() / R - 1.0));
            out.push(t.clamp(0.0, 254.0) as u8);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_thresholds_of_blocks() {
        // 4 x 3 plane, blocks of 2: the last block column is one pixel wide.
        let plane = [10u8, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120];
        let stats = BlockStats::of_plane(&plane, 4, 3, 2);
        assert_eq!(
            stats.sum,
            vec![10 + 20 + 50 + 60, 30 + 40 + 70 + 80, 90 + 100, 110 + 120]
        );
        assert_eq!(stats.squares[3], 110 * 110 + 120 * 120);
        // Uniform paper: the threshold is (1 - k) of it.
        let paper = vec![200u8; 40 * 30];
        let t = block_thresholds(&BlockStats::of_plane(&paper, 40, 30, 5), 0.2);
        assert!(t.iter().all(|&v| v == 160));
    }
}
