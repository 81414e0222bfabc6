//! Reading the lines of a piece of a landed file into memory that a worker keeps.
//!
//! A worker decodes one piece after another. Each request to an object store returns
//! its bytes in memory of their own; reading a local file straight into memory the
//! worker keeps spares that allocation and its copy for every piece.

use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::Arc;

use object_store::{GetOptions, GetResultPayload, ObjectMeta, ObjectStore};

use super::pieces::MAX_PIECE;
use crate::error::{Result, StediError};

/// How far past a piece's end the first read goes, so that the piece's last line is
/// nearly always complete after one request.
pub(super) const TAIL_READ: u64 = 64 * 1024;

/// Reads pieces of landed files into text memory of its own, reused from piece to piece.
pub(super) struct PieceReader {
    store: Arc<dyn ObjectStore>,
    text: Vec<u8>,
    /// Whether the store has handed over a local file: only then is prefetching a hint
    /// to the operating system rather than a request that fetches bytes for nothing.
    local: bool,
}

impl PieceReader {
    /// A reader of files in `store` (the lakehouse's).
    pub fn new(store: Arc<dyn ObjectStore>) -> Self {
        PieceReader {
            store,
            text: Vec::new(),
            local: false,
        }
    }

    /// The lines that start within bytes `start..end` of a landed file: from the first
    /// line start at or after `start` to the end of the line holding byte `end - 1` (read
    /// on past `end`). Every line ends with a newline; the file's last is given one.
    pub async fn lines(&mut self, meta: &ObjectMeta, start: u64, end: u64) -> Result<&[u8]> {
        if self.text.capacity() > 4 * MAX_PIECE as usize {
            // Grown for an extraordinarily long line: not kept for the pieces to come.
            self.text = Vec::new();
        }
        self.text.clear();
        if start >= end {
            return Ok(&[]);
        }
        // One byte before the piece tells whether a line starts at its first byte.
        let from = start.saturating_sub(1);
        let until = (end + TAIL_READ).min(meta.size);
        self.append(meta, from..until).await?;
        let first_line = if start == 0 {
            0
        } else {
            match memchr::memchr(b'\n', &self.text) {
                Some(i) => i + 1,
                // No line starts here: the piece lies inside one that began before it.
                None => return Ok(&[]),
            }
        };
        // The piece holds the lines that start before its end.
        let last_byte = (end - 1 - from) as usize;
        if first_line > last_byte {
            return Ok(&[]);
        }
        // A line that runs on past the first read is read on, doubling, so that a very
        // long line takes few requests.
        let (mut searched, mut offset, mut step) = (last_byte, until, 2 * TAIL_READ);
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.text[searched..]) {
                return Ok(&self.text[first_line..=searched + i]);
            }
            if offset >= meta.size {
                // The file's last line, without a newline.
                self.text.push(b'\n');
                return Ok(&self.text[first_line..]);
            }
            searched = self.text.len();
            let until = (offset + step).min(meta.size);
            step = (step * 2).min(MAX_PIECE);
            self.append(meta, offset..until).await?;
            offset = until;
        }
    }

    /// Asks the operating system to start reading bytes `range` of a landed file on a
    /// local disk into its cache, without waiting for them: a worker that reads the next
    /// piece only after decoding this one then finds it there, instead of leaving its
    /// core idle while the disk catches up. A store that has not handed over a local
    /// file (object storage) is not asked.
    pub async fn prefetch(&self, meta: &ObjectMeta, range: Range<u64>) {
        if !self.local {
            return;
        }
        let options = GetOptions {
            range: Some(range.into()),
            ..GetOptions::default()
        };
        let Ok(got) = self.store.get_opts(&meta.location, options).await else {
            // Only a hint: reading the piece will report what is wrong.
            return;
        };
        #[cfg(unix)]
        if let GetResultPayload::File(file, _) = &got.payload {
            use std::os::fd::AsRawFd;
            let (start, len) = (got.range.start, got.range.end - got.range.start);
            // SAFETY: the descriptor is open for as long as `file` lives.
            unsafe {
                libc::posix_fadvise(
                    file.as_raw_fd(),
                    start as libc::off_t,
                    len as libc::off_t,
                    libc::POSIX_FADV_WILLNEED,
                );
            }
        }
        drop(got);
    }

    /// Appends bytes `range` of a landed file to the text. A file on a local disk is
    /// read straight into it; from any other store, what a request returns is copied in.
    async fn append(&mut self, meta: &ObjectMeta, range: Range<u64>) -> Result<()> {
        let options = GetOptions {
            range: Some(range.into()),
            ..GetOptions::default()
        };
        let got = self.store.get_opts(&meta.location, options).await?;
        if let GetResultPayload::File(file, path) = &got.payload {
            self.local = true;
            // Read on this worker's own thread: it has nothing else to do until the text
            // is there, and decoding it will hold the thread far longer.
            let wanted = got.range.end - got.range.start;
            let mut file = file;
            let read = file
                .seek(SeekFrom::Start(got.range.start))
                .and_then(|_| file.take(wanted).read_to_end(&mut self.text));
            return match read {
                Ok(n) if n as u64 == wanted => Ok(()),
                Ok(n) => Err(StediError::ReadInput {
                    path: path.clone(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        format!("the file ended {} bytes early", wanted - n as u64),
                    ),
                }),
                Err(source) => Err(StediError::ReadInput {
                    path: path.clone(),
                    source,
                }),
            };
        }
        self.text.extend_from_slice(&got.bytes().await?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::ObjectStoreExt;
    use object_store::local::LocalFileSystem;
    use object_store::memory::InMemory;
    use object_store::path::Path;

    /// Reads a file piece by piece of `size` bytes with one reader, and gives the lines of
    /// all its pieces one after another.
    async fn read_in_pieces(reader: &mut PieceReader, meta: &ObjectMeta, size: u64) -> Vec<u8> {
        let mut all = Vec::new();
        let mut start = 0;
        while start < meta.size {
            let end = (start + size).min(meta.size);
            all.extend_from_slice(reader.lines(meta, start, end).await.unwrap());
            start = end;
        }
        all
    }

    /// How many of the pages of bytes `range` of `file` the operating system holds in memory.
    #[cfg(target_os = "linux")]
    fn cached_pages(file: &std::fs::File, range: Range<usize>) -> (usize, usize) {
        use std::os::fd::AsRawFd;
        let page = 4096;
        let len = file.metadata().unwrap().len() as usize;
        // SAFETY: a read-only mapping of an open file, unmapped before returning.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            let mut pages = vec![0u8; len.div_ceil(page)];
            assert_eq!(libc::mincore(map, len, pages.as_mut_ptr()), 0);
            libc::munmap(map, len);
            let wanted = &pages[range.start / page..range.end.div_ceil(page)];
            (wanted.iter().filter(|p| *p & 1 == 1).count(), wanted.len())
        }
    }

    /// Prefetching a piece of a file on a local disk has the operating system read it
    /// into memory before anyone reads it.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_prefetched_piece_of_a_local_file_is_read_into_memory() {
        use std::os::fd::AsRawFd;
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
        let path = Path::from("landing/accelerometer/f.json");
        store.put(&path, vec![b'x'; 4 << 20].into()).await.unwrap();
        let meta = store.head(&path).await.unwrap();
        let file = std::fs::File::open(dir.path().join(path.as_ref())).unwrap();
        file.sync_all().unwrap();
        // SAFETY: a hint on an open descriptor.
        unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        let piece = (1 << 20)..(3 << 20);
        if cached_pages(&file, piece.clone()).0 > 0 {
            eprintln!(
                "skipped: this file system keeps files in memory, there is nothing to prefetch"
            );
            return;
        }

        // A reader prefetches once the store has shown it hands over local files: here
        // by another file, which leaves the operating system no cause to read this one.
        let other = Path::from("landing/accelerometer/e.json");
        store.put(&other, "{}\n".into()).await.unwrap();
        let other = store.head(&other).await.unwrap();
        let mut reader = PieceReader::new(store);
        reader.lines(&other, 0, 3).await.unwrap();
        reader
            .prefetch(&meta, piece.start as u64..piece.end as u64)
            .await;

        // The disk is read in the background: wait for it, a little.
        let mut cached = (0, 1);
        for _ in 0..200 {
            cached = cached_pages(&file, piece.clone());
            if cached.0 == cached.1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(cached.0, cached.1, "pages of the piece in memory (of all)");
    }

    /// One reader, reading the pieces of a file one after another from a local disk or
    /// from any other store, gives each of its lines once, in order, each with a newline:
    /// pieces smaller than a line, a line longer than the reads past a piece, and a last
    /// line without newline.
    #[tokio::test]
    async fn the_pieces_of_a_file_read_in_turn_give_its_lines_once() {
        let dir = tempfile::tempdir().unwrap();
        let stores: [Arc<dyn ObjectStore>; 2] = [
            Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap()),
            Arc::new(InMemory::new()),
        ];
        let long = "l".repeat(3 * TAIL_READ as usize);
        let short_lines = "a\n\nbb\n{\"x\":1}\n   \nccc\nlast".to_string();
        let with_a_long_line = format!("a\n{long}\nbb\n{long}{long}\nlast");
        for store in stores {
            let mut reader = PieceReader::new(store.clone());
            for (text, sizes) in [
                (&short_lines, vec![1, 2, 3, 5, 8, 100]),
                (&with_a_long_line, vec![1000, TAIL_READ / 2, TAIL_READ * 5]),
            ] {
                let path = Path::from("landing/accelerometer/f.json");
                store.put(&path, text.clone().into()).await.unwrap();
                let meta = store.head(&path).await.unwrap();
                for size in sizes {
                    let all = read_in_pieces(&mut reader, &meta, size).await;
                    assert!(
                        all == format!("{text}\n").as_bytes(),
                        "pieces of {size} bytes of a {} byte file",
                        text.len()
                    );
                }
            }
        }
    }
}
