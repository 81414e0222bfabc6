//! Landed files cut into pieces at line boundaries, so that a few big files (or one)
//! keep every core busy, each piece's first line number following from the line counts
//! of the pieces before it.

/// The most bytes of a landed file one worker decodes in one go (a piece of the file).
pub(super) const MAX_PIECE: u64 = 16 * 1024 * 1024;

/// The fewest: below this, splitting a file costs more than it spreads.
const MIN_PIECE: u64 = 1024 * 1024;

/// A piece of a landed file: the lines that start within `start..end` of it.
pub(super) struct Piece {
    pub batch: usize,
    pub file: usize,
    /// Its place among the pieces of its file.
    pub index: usize,
    pub start: u64,
    pub end: u64,
}

impl Piece {
    /// File `file` of batch `batch` (of `file_size` bytes) cut into pieces of at most
    /// `size` bytes, as even as can be; one empty piece for an empty file.
    pub fn cut(
        batch: usize,
        file: usize,
        file_size: u64,
        size: u64,
    ) -> impl Iterator<Item = Piece> {
        let n = file_size.div_ceil(size).max(1);
        let step = file_size.div_ceil(n);
        (0..n as usize).map(move |index| Piece {
            batch,
            file,
            index,
            start: (index as u64 * step).min(file_size),
            end: ((index as u64 + 1) * step).min(file_size),
        })
    }
}

/// The pieces every landed file is decoded in, in order (batches, then files, then
/// position), and the line count of each piece once it is known.
///
/// Large files are split so that a few big files (or a single one) keep every core
/// busy. A piece's first line number depends on the pieces before it in its file: each
/// worker counts its piece's lines as soon as it has read it, before it waits for the
/// counts it needs, so pieces taken in order never wait on one that is not under way.
pub(super) struct Pieces {
    pub list: Vec<Piece>,
    /// Per piece of `list`: its number of lines, once counted.
    lines: Vec<tokio::sync::watch::Sender<Option<u64>>>,
}

impl Pieces {
    /// Pieces for files of the given sizes (per batch, per file), for `workers` workers.
    pub fn plan(sizes: &[Vec<u64>], workers: usize) -> Pieces {
        let total: u64 = sizes.iter().flatten().sum();
        // A few pieces per worker, so that the last ones even out.
        let size = (total / (workers as u64 * 4).max(1)).clamp(MIN_PIECE, MAX_PIECE);
        let mut list = Vec::new();
        for (b, batch) in sizes.iter().enumerate() {
            for (f, &file_size) in batch.iter().enumerate() {
                list.extend(Piece::cut(b, f, file_size, size));
            }
        }
        Pieces::of(list)
    }

    /// `list` (each file's pieces one after another, in order) with nothing counted yet.
    pub fn of(list: Vec<Piece>) -> Pieces {
        let lines = list
            .iter()
            .map(|_| tokio::sync::watch::Sender::new(None))
            .collect();
        Pieces { list, lines }
    }

    /// Records how many lines piece `at` holds.
    pub fn counted(&self, at: usize, lines: u64) {
        self.lines[at].send_replace(Some(lines));
    }

    /// The lines of the file before piece `at`, once every earlier piece of it is
    /// counted (they are the `index` pieces just before it in the list).
    pub async fn lines_before(&self, at: usize) -> u64 {
        let mut before = 0;
        for count in &self.lines[at - self.list[at].index..at] {
            let mut count = count.subscribe();
            // The sender lives as long as `self`, so waiting cannot fail.
            if let Ok(lines) = count.wait_for(Option::is_some).await {
                before += lines.unwrap_or(0);
            }
        }
        before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each file's pieces follow one another from its first byte to its last, none larger
    /// than a worker should hold; one large file is cut for every worker to share, many
    /// small ones are not cut at all.
    #[test]
    fn pieces_cover_each_file_exactly_and_spread_a_large_one() {
        const MIB: u64 = 1024 * 1024;
        let cases = [
            vec![vec![8 * MIB], vec![300 * 1024, 0], vec![3 * MIB]],
            vec![vec![400 * MIB]],
            vec![(0..100).map(|_| 8 * MIB).collect()],
            vec![vec![0]],
        ];
        for sizes in cases {
            let pieces = Pieces::plan(&sizes, 2);
            for (b, files) in sizes.iter().enumerate() {
                for (f, &size) in files.iter().enumerate() {
                    let mine: Vec<&Piece> = pieces
                        .list
                        .iter()
                        .filter(|p| p.batch == b && p.file == f)
                        .collect();
                    assert!(!mine.is_empty());
                    let mut at = 0;
                    for (i, p) in mine.iter().enumerate() {
                        assert_eq!((p.index, p.start), (i, at), "{sizes:?}");
                        assert!(p.end - p.start <= MAX_PIECE);
                        at = p.end;
                    }
                    assert_eq!(at, size);
                }
            }
            // In order: batches, files, then position.
            let order: Vec<_> = pieces
                .list
                .iter()
                .map(|p| (p.batch, p.file, p.index))
                .collect();
            assert!(order.windows(2).all(|w| w[0] < w[1]));
        }
        // One big file alone: several pieces per worker; a hundred files: none cut.
        assert!(Pieces::plan(&[vec![8 * MIB]], 2).list.len() >= 4);
        assert_eq!(
            Pieces::plan(&[(0..100).map(|_| 8 * MIB).collect()], 2)
                .list
                .len(),
            100
        );
    }
}
