//! Connected components of a bilevel page, found from its runs of black pixels.
//!
//! The binariser hands over the runs of every row (it finds them while the row is in cache);
//! union-find over runs that touch (8-connectivity) gives the components. Nothing here reads
//! pixels, so labelling costs time in proportion to the ink, not to the page.

use multiversion::multiversion;

/// A horizontal run `[x0, x1)` of black pixels in row `y`, with the sum of the grey values under
/// it (what the page looked like before binarisation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub y: u32,
    pub x0: u32,
    pub x1: u32,
    pub sum: u32,
}

impl Run {
    pub fn len(&self) -> u32 {
        self.x1 - self.x0
    }
}

/// Runs of a `width x height` bilevel page, row by row and left to right within a row.
#[derive(Clone, Debug, Default)]
pub(crate) struct Runs {
    pub width: usize,
    pub height: usize,
    pub runs: Vec<Run>,
    /// Runs of row `y` are `runs[row_start[y]..row_start[y + 1]]`.
    pub row_start: Vec<usize>,
}

impl Runs {
    /// Collects the runs of black (zero) pixels of a bilevel page (0 = black, else white);
    /// `grey` gives the values summed under each run (the page itself when `None`).
    pub fn of_bilevel(bilevel: &[u8], grey: Option<&[u8]>, width: usize) -> Self {
        let height = bilevel.len() / width.max(1);
        let mut out = Self {
            width,
            height,
            runs: Vec::new(),
            row_start: Vec::with_capacity(height + 1),
        };
        out.row_start.push(0);
        for y in 0..height {
            let row = &bilevel[y * width..(y + 1) * width];
            let values = grey.map_or(row, |g| &g[y * width..(y + 1) * width]);
            push_row_runs(row, values, y as u32, &mut out.runs);
            out.row_start.push(out.runs.len());
        }
        out
    }

    /// The runs of row `y`.
    pub fn row(&self, y: usize) -> &[Run] {
        &self.runs[self.row_start[y]..self.row_start[y + 1]]
    }
}

/// Appends the runs of black (zero) pixels of one bilevel row; white stretches are skipped
/// sixteen bytes at a time.
#[multiversion(targets("x86_64+avx2"))]
pub(crate) fn push_row_runs(row: &[u8], values: &[u8], y: u32, runs: &mut Vec<Run>) {
    let n = row.len();
    let mut x = 0;
    const TOPS: u128 = 0x8080_8080_8080_8080_8080_8080_8080_8080;
    while x < n {
        if x + 16 <= n {
            let chunk = u128::from_ne_bytes(row[x..x + 16].try_into().unwrap_or([0; 16]));
            if chunk & TOPS == TOPS {
                // Every byte has its top bit set: sixteen white pixels.
                x += 16;
                continue;
            }
        }
        if row[x] >= 128 {
            x += 1;
            continue;
        }
        let start = x;
        while x < n && row[x] < 128 {
            x += 1;
        }
        let sum = values[start..x].iter().map(|&v| u32::from(v)).sum();
        runs.push(Run {
            y,
            x0: start as u32,
            x1: x as u32,
            sum,
        });
    }
}

/// One connected component: bounding box (exclusive ends), black pixel count, grey sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Component {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
    pub area: u32,
    pub sum: u64,
}

impl Component {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }

    /// Mean grey value under the component.
    pub fn mean(&self) -> f64 {
        self.sum as f64 / f64::from(self.area.max(1))
    }
}

/// The components of a page and the component of every run.
#[derive(Clone, Debug, Default)]
pub(crate) struct Components {
    pub list: Vec<Component>,
    /// `of_run[i]` is the index in `list` of the component holding run `i`.
    pub of_run: Vec<u32>,
}

/// Labels the runs (8-connectivity).
pub(crate) fn label(runs: &Runs) -> Components {
    let n = runs.runs.len();
    let mut parent: Vec<u32> = (0..n as u32).collect();
    for y in 1..runs.height {
        let (above, here) = (
            runs.row_start[y - 1]..runs.row_start[y],
            runs.row_start[y]..runs.row_start[y + 1],
        );
        let (mut i, mut j) = (above.start, here.start);
        while i < above.end && j < here.end {
            let (a, b) = (runs.runs[i], runs.runs[j]);
            if a.x1 < b.x0 {
                i += 1;
            } else if b.x1 < a.x0 {
                j += 1;
            } else {
                union(&mut parent, i as u32, j as u32);
                if a.x1 < b.x1 {
                    i += 1;
                } else {
                    j += 1;
                }
            }
        }
    }
    let mut index = vec![u32::MAX; n];
    let mut list: Vec<Component> = Vec::new();
    let mut of_run = Vec::with_capacity(n);
    for (i, run) in runs.runs.iter().enumerate() {
        let root = find(&mut parent, i as u32) as usize;
        if index[root] == u32::MAX {
            index[root] = list.len() as u32;
            list.push(Component {
                x0: run.x0,
                y0: run.y,
                x1: run.x1,
                y1: run.y + 1,
                area: 0,
                sum: 0,
            });
        }
        let c = &mut list[index[root] as usize];
        c.x0 = c.x0.min(run.x0);
        c.x1 = c.x1.max(run.x1);
        c.y1 = c.y1.max(run.y + 1);
        c.area += run.len();
        c.sum += u64::from(run.sum);
        of_run.push(index[root]);
    }
    Components { list, of_run }
}

fn find(parent: &mut [u32], mut i: u32) -> u32 {
    while parent[i as usize] != i {
        let up = parent[parent[i as usize] as usize];
        parent[i as usize] = up;
        i = up;
    }
    i
}

/// Joins two sets; the smaller run index becomes the root, so a root is always the set's
/// first run (in row order) and components come out in order of their top rows.
fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra < rb {
        parent[rb as usize] = ra;
    } else if rb < ra {
        parent[ra as usize] = rb;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(rows: &[&str]) -> (Vec<u8>, usize) {
        let width = rows[0].len();
        let data = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| if b == b'#' { 0 } else { 255 }))
            .collect();
        (data, width)
    }

    #[test]
    fn finds_runs_and_skips_white() {
        let (data, w) = page(&["..##......#.....##", "##................"]);
        let runs = Runs::of_bilevel(&data, None, w);
        let spans: Vec<(u32, u32, u32)> = runs.runs.iter().map(|r| (r.y, r.x0, r.x1)).collect();
        assert_eq!(spans, vec![(0, 2, 4), (0, 10, 11), (0, 16, 18), (1, 0, 2)]);
        assert_eq!(runs.row(1).len(), 1);
        assert_eq!(runs.runs[0].sum, 0);
    }

    #[test]
    fn labels_eight_connected_shapes() {
        let (data, w) = page(&[
            "#...#....#", //
            ".#.#.....#",
            "..#......#",
            ".....##...",
            "#....##..#",
        ]);
        let comps = label(&Runs::of_bilevel(&data, None, w));
        let mut boxes: Vec<(u32, u32, u32, u32, u32)> = comps
            .list
            .iter()
            .map(|c| (c.x0, c.y0, c.x1, c.y1, c.area))
            .collect();
        boxes.sort_unstable();
        assert_eq!(
            boxes,
            vec![
                (0, 0, 5, 3, 5),
                (0, 4, 1, 5, 1),
                (5, 3, 7, 5, 4),
                (9, 0, 10, 3, 3),
                (9, 4, 10, 5, 1)
            ]
        );
        assert_eq!(comps.of_run.len(), 12);
    }

    #[test]
    fn grey_sums_follow_the_runs() {
        let bilevel = [0u8, 0, 255, 0];
        let grey = [10u8, 20, 200, 30];
        let runs = Runs::of_bilevel(&bilevel, Some(&grey), 4);
        let comps = label(&runs);
        let sums: Vec<u64> = comps.list.iter().map(|c| c.sum).collect();
        assert_eq!(sums, vec![30, 30]);
        assert!((comps.list[0].mean() - 15.0).abs() < 1e-9);
    }
}
