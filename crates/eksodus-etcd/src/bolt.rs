//! The bbolt file format, read directly: meta pages (the valid one with the highest transaction ID), the
//! freelist, buckets (nested, and inline ones stored in their parent's leaf), branch and leaf pages, overflow
//! pages. Layout as bbolt defines it (`page.go`, `bucket.go`, `db.go` of go.etcd.io/bbolt): little-endian,
//! a 16-byte page header `id u64, flags u16, count u16, overflow u32`, 16-byte branch elements
//! `pos u32, ksize u32, pgid u64` and leaf elements `flags u32, pos u32, ksize u32, vsize u32`, with `pos`
//! relative to the element itself.
//!
//! Nothing here trusts the file: every offset is bounds checked, every page is visited at most once per walk,
//! and what cannot be read becomes a [`Damage`] entry while the rest is still returned.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::os::unix::fs::FileExt;

use serde::Serialize;

/// bbolt's magic number.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The data-file version bbolt writes.
pub const VERSION: u32 = 2;
const PAGE_HEADER: usize = 16;
const BRANCH_FLAG: u16 = 0x01;
const LEAF_FLAG: u16 = 0x02;
const META_FLAG: u16 = 0x04;
const FREELIST_FLAG: u16 = 0x10;
const BUCKET_LEAF_FLAG: u32 = 0x01;
const ELEMENT: usize = 16;
const BUCKET_HEADER: usize = 16;

/// Something that could not be read, and where.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Damage {
    /// The page, when known.
    pub page: Option<u64>,
    /// The bucket or key, when known.
    pub key: Option<String>,
    /// What is wrong.
    pub reason: String,
}

/// A meta page's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Meta {
    /// Which of the two meta pages (0 or 1).
    pub page: u64,
    /// Page size.
    pub page_size: u32,
    /// Root bucket's page.
    pub root: u64,
    /// Freelist page (`u64::MAX` when the freelist is not persisted).
    pub freelist: u64,
    /// High-water mark: pages in use.
    pub high_water: u64,
    /// Transaction ID.
    pub txid: u64,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}
fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// FNV-1a, 64 bits: bbolt's meta checksum.
fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| (h ^ u64::from(*x)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Parses one meta page at `off`; `Err` says why it is not valid.
fn meta_at(data: &[u8], off: usize, page: u64) -> Result<Meta, String> {
    let m = off + PAGE_HEADER;
    let flags = u16_at(data, off + 8).ok_or("truncated")?;
    if flags & META_FLAG == 0 {
        return Err(format!("page flags {flags:#x} are not a meta page's"));
    }
    let magic = u32_at(data, m).ok_or("truncated")?;
    if magic != MAGIC {
        return Err(format!("magic {magic:#x}, not bbolt's"));
    }
    let version = u32_at(data, m + 4).ok_or("truncated")?;
    if version != VERSION {
        return Err(format!("version {version}, not {VERSION}"));
    }
    let sum = u64_at(data, m + 56).ok_or("truncated")?;
    if fnv1a(data.get(m..m + 56).ok_or("truncated")?) != sum {
        return Err("checksum mismatch".into());
    }
    Ok(Meta {
        page,
        page_size: u32_at(data, m + 8).ok_or("truncated")?,
        root: u64_at(data, m + 16).ok_or("truncated")?,
        freelist: u64_at(data, m + 32).ok_or("truncated")?,
        high_water: u64_at(data, m + 40).ok_or("truncated")?,
        txid: u64_at(data, m + 48).ok_or("truncated")?,
    })
}

/// Where the pages come from: bytes in memory, or a file read page by page (so a large snapshot is never held
/// whole).
#[derive(Debug)]
enum Source<'a> {
    Bytes(&'a [u8]),
    File { file: std::fs::File, len: u64 },
}

impl<'a> Source<'a> {
    fn len(&self) -> usize {
        match self {
            Source::Bytes(b) => b.len(),
            Source::File { len, .. } => *len as usize,
        }
    }

    /// `len` bytes at `off`, or `None` past the end.
    fn read(&self, off: usize, len: usize) -> Option<Cow<'a, [u8]>> {
        let end = off.checked_add(len)?;
        if end > self.len() {
            return None;
        }
        match self {
            Source::Bytes(b) => b.get(off..end).map(Cow::Borrowed),
            Source::File { file, .. } => {
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, off as u64).ok()?;
                Some(Cow::Owned(buf))
            }
        }
    }
}

/// A bbolt file.
#[derive(Debug)]
pub struct Db<'a> {
    src: Source<'a>,
    /// The meta page in use.
    pub meta: Meta,
    /// Problems found so far.
    pub damage: Vec<Damage>,
}

/// One key/value of a bucket, or a nested bucket; borrowed from the page being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item<'b> {
    /// A key and its value.
    Value(&'b [u8], &'b [u8]),
    /// A nested bucket.
    Bucket(&'b [u8], BucketRef),
}

/// Where a bucket's tree starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketRef {
    /// A tree rooted at a page.
    Page(u64),
    /// An inline bucket: its single leaf page, copied out of the parent's value.
    Inline(Vec<u8>),
}

impl<'a> Db<'a> {
    /// Opens a file's bytes: picks the valid meta page with the highest transaction ID (bbolt's rule). Fails
    /// only when neither meta page is valid.
    pub fn open(data: &'a [u8]) -> Result<Db<'a>, String> {
        Self::open_source(Source::Bytes(data))
    }

    /// Opens a file, read page by page; `len` is how much of it is the database (a snapshot's trailing hash is
    /// not).
    pub fn open_file(file: std::fs::File, len: u64) -> Result<Db<'static>, String> {
        Db::open_source(Source::File { file, len })
    }

    fn open_source(src: Source<'a>) -> Result<Db<'a>, String> {
        // meta pages are small: read enough for both at any plausible page size
        let head = src.read(0, src.len().min(2 * 65536)).unwrap_or(Cow::Borrowed(&[]));
        let data: &[u8] = &head;
        let m0 = meta_at(data, 0, 0);
        // the second meta page is one page in; its size comes from whichever meta is readable
        let size = match &m0 {
            Ok(m) => m.page_size as usize,
            Err(_) => [4096usize, 8192, 16384, 65536, 1024, 2048]
                .into_iter()
                .find(|s| meta_at(data, *s, 1).is_ok())
                .unwrap_or(4096),
        };
        let m1 = meta_at(data, size, 1);
        let mut damage = Vec::new();
        if let Err(e) = &m0 {
            damage.push(Damage { page: Some(0), key: None, reason: format!("meta page 0 invalid: {e}") });
        }
        if let Err(e) = &m1 {
            damage.push(Damage { page: Some(1), key: None, reason: format!("meta page 1 invalid: {e}") });
        }
        let meta = match (m0, m1) {
            (Ok(a), Ok(b)) => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            (Ok(a), Err(_)) => a,
            (Err(_), Ok(b)) => b,
            (Err(a), Err(b)) => return Err(format!("no valid meta page (page 0: {a}; page 1: {b})")),
        };
        if !(512..=1 << 20).contains(&meta.page_size) {
            return Err(format!("page size {} is not plausible", meta.page_size));
        }
        Ok(Db { src, meta, damage })
    }

    /// The bytes of page `id` including its overflow pages, and its header fields (flags, count).
    fn page(&self, id: u64) -> Result<(Cow<'a, [u8]>, u16, u16), String> {
        let ps = self.meta.page_size as usize;
        let off = (id as usize).checked_mul(ps).ok_or("page offset overflow")?;
        let head = self.src.read(off, PAGE_HEADER).ok_or_else(|| format!("page {id} is past the end of the file"))?;
        let pid = u64_at(&head, 0).unwrap_or(0);
        if pid != id {
            return Err(format!("page {id} says it is page {pid}"));
        }
        let flags = u16_at(&head, 8).unwrap_or(0);
        let count = u16_at(&head, 10).unwrap_or(0);
        let overflow = u32_at(&head, 12).unwrap_or(0) as usize;
        let len = overflow.checked_add(1).and_then(|n| n.checked_mul(ps)).ok_or("overflow count overflow")?;
        let bytes = self
            .src
            .read(off, len)
            .ok_or_else(|| format!("page {id} ({overflow} overflow pages) runs past the end of the file"))?;
        Ok((bytes, flags, count))
    }

    /// The freelist's page IDs (empty when it is not persisted).
    pub fn freelist(&mut self) -> Vec<u64> {
        if self.meta.freelist == u64::MAX {
            return vec![];
        }
        match self.page(self.meta.freelist) {
            Ok((b, flags, count)) if flags & FREELIST_FLAG != 0 => {
                let b: &[u8] = &b;
                let (mut n, mut start) = (count as usize, PAGE_HEADER);
                if count == 0xFFFF {
                    n = u64_at(b, PAGE_HEADER).unwrap_or(0) as usize;
                    start += 8;
                }
                (0..n).map_while(|i| u64_at(b, start + i * 8)).collect()
            }
            Ok((_, flags, _)) => {
                self.damage.push(Damage {
                    page: Some(self.meta.freelist),
                    key: None,
                    reason: format!("freelist page has flags {flags:#x}"),
                });
                vec![]
            }
            Err(e) => {
                self.damage.push(Damage { page: Some(self.meta.freelist), key: None, reason: e });
                vec![]
            }
        }
    }

    /// The root bucket.
    pub fn root(&self) -> BucketRef {
        BucketRef::Page(self.meta.root)
    }

    /// Every item of a bucket, in key order, calling `f` for each; damaged subtrees are skipped and recorded.
    pub fn walk(&mut self, bucket: BucketRef, name: &str, f: &mut dyn FnMut(Item<'_>)) {
        let mut seen = BTreeSet::new();
        match bucket {
            BucketRef::Page(id) => self.walk_page(id, name, &mut seen, f),
            BucketRef::Inline(bytes) => {
                if let Err(e) = self.leaf(&bytes, None, name, f) {
                    self.damage.push(Damage {
                        page: None,
                        key: Some(name.into()),
                        reason: format!("inline bucket: {e}"),
                    });
                }
            }
        }
    }

    fn walk_page(&mut self, id: u64, name: &str, seen: &mut BTreeSet<u64>, f: &mut dyn FnMut(Item<'_>)) {
        if !seen.insert(id) {
            self.damage.push(Damage {
                page: Some(id),
                key: Some(name.into()),
                reason: "page reached twice (a cycle)".into(),
            });
            return;
        }
        if id < 2 || id >= self.meta.high_water.max(2) {
            self.damage.push(Damage {
                page: Some(id),
                key: Some(name.into()),
                reason: format!("page id outside 2..{}", self.meta.high_water),
            });
            return;
        }
        let (bytes, flags, count) = match self.page(id) {
            Ok(p) => p,
            Err(e) => {
                self.damage.push(Damage { page: Some(id), key: Some(name.into()), reason: e });
                return;
            }
        };
        if flags & BRANCH_FLAG != 0 {
            let mut children = Vec::with_capacity(count as usize);
            for i in 0..count as usize {
                let e = PAGE_HEADER + i * ELEMENT;
                match u64_at(&bytes, e + 8) {
                    Some(child) => children.push(child),
                    None => {
                        self.damage.push(Damage {
                            page: Some(id),
                            key: Some(name.into()),
                            reason: format!("branch element {i} is cut off"),
                        });
                        break;
                    }
                }
            }
            for c in children {
                self.walk_page(c, name, seen, f);
            }
        } else if flags & LEAF_FLAG != 0 {
            if let Err(e) = self.leaf(&bytes, Some(id), name, f) {
                self.damage.push(Damage { page: Some(id), key: Some(name.into()), reason: e });
            }
        } else {
            self.damage.push(Damage {
                page: Some(id),
                key: Some(name.into()),
                reason: format!("flags {flags:#x}: neither a branch nor a leaf"),
            });
        }
    }

    /// The elements of a leaf page (`bytes` starts at its header).
    fn leaf(&mut self, bytes: &[u8], id: Option<u64>, name: &str, f: &mut dyn FnMut(Item<'_>)) -> Result<(), String> {
        let flags = u16_at(bytes, 8).ok_or("leaf header cut off")?;
        if flags & LEAF_FLAG == 0 {
            return Err(format!("flags {flags:#x}: not a leaf"));
        }
        let count = u16_at(bytes, 10).ok_or("leaf header cut off")? as usize;
        for i in 0..count {
            let e = PAGE_HEADER + i * ELEMENT;
            let (Some(eflags), Some(pos), Some(ks), Some(vs)) =
                (u32_at(bytes, e), u32_at(bytes, e + 4), u32_at(bytes, e + 8), u32_at(bytes, e + 12))
            else {
                return Err(format!("leaf element {i} is cut off"));
            };
            let k0 = e.checked_add(pos as usize).ok_or("key offset overflow")?;
            let k1 = k0.checked_add(ks as usize).ok_or("key length overflow")?;
            let v1 = k1.checked_add(vs as usize).ok_or("value length overflow")?;
            let (Some(k), Some(v)) = (bytes.get(k0..k1), bytes.get(k1..v1)) else {
                self.damage.push(Damage {
                    page: id,
                    key: Some(name.into()),
                    reason: format!("leaf element {i} points past its page"),
                });
                continue;
            };
            if eflags & BUCKET_LEAF_FLAG != 0 {
                let Some(root) = u64_at(v, 0) else {
                    self.damage.push(Damage {
                        page: id,
                        key: Some(String::from_utf8_lossy(k).into()),
                        reason: "bucket header cut off".into(),
                    });
                    continue;
                };
                let b = if root == 0 {
                    BucketRef::Inline(v.get(BUCKET_HEADER..).unwrap_or_default().to_vec())
                } else {
                    BucketRef::Page(root)
                };
                f(Item::Bucket(k, b));
            } else {
                f(Item::Value(k, v));
            }
        }
        Ok(())
    }

    /// A named bucket directly under the root.
    pub fn bucket(&mut self, name: &[u8]) -> Option<BucketRef> {
        let mut found = None;
        let root = self.root();
        self.walk(root, "(root)", &mut |it| {
            if let Item::Bucket(k, b) = it {
                if k == name {
                    found = Some(b);
                }
            }
        });
        found
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Builds small bbolt files for tests: two meta pages, a freelist, a root leaf with buckets, and one leaf
    //! page per bucket (values big enough use overflow pages).
    use super::*;

    fn header(id: u64, flags: u16, count: u16, overflow: u32) -> Vec<u8> {
        let mut h = Vec::with_capacity(16);
        h.extend_from_slice(&id.to_le_bytes());
        h.extend_from_slice(&flags.to_le_bytes());
        h.extend_from_slice(&count.to_le_bytes());
        h.extend_from_slice(&overflow.to_le_bytes());
        h
    }

    fn leaf(id: u64, items: &[(Vec<u8>, Vec<u8>, bool)], ps: usize) -> Vec<u8> {
        let mut p = header(id, LEAF_FLAG, items.len() as u16, 0);
        let data_start = PAGE_HEADER + items.len() * ELEMENT;
        let mut data = Vec::new();
        for (i, (k, v, bucket)) in items.iter().enumerate() {
            let e = PAGE_HEADER + i * ELEMENT;
            let pos = (data_start + data.len() - e) as u32;
            p.extend_from_slice(&(u32::from(*bucket)).to_le_bytes());
            p.extend_from_slice(&pos.to_le_bytes());
            p.extend_from_slice(&(k.len() as u32).to_le_bytes());
            p.extend_from_slice(&(v.len() as u32).to_le_bytes());
            data.extend_from_slice(k);
            data.extend_from_slice(v);
        }
        p.extend_from_slice(&data);
        let pages = p.len().div_ceil(ps);
        p[12..16].copy_from_slice(&((pages - 1) as u32).to_le_bytes());
        p.resize(pages * ps, 0);
        p
    }

    fn meta(id: u64, ps: u32, root: u64, freelist: u64, hw: u64, txid: u64) -> Vec<u8> {
        let mut p = header(id, META_FLAG, 0, 0);
        let mut m = Vec::new();
        m.extend_from_slice(&MAGIC.to_le_bytes());
        m.extend_from_slice(&VERSION.to_le_bytes());
        m.extend_from_slice(&ps.to_le_bytes());
        m.extend_from_slice(&0u32.to_le_bytes());
        m.extend_from_slice(&root.to_le_bytes());
        m.extend_from_slice(&0u64.to_le_bytes());
        m.extend_from_slice(&freelist.to_le_bytes());
        m.extend_from_slice(&hw.to_le_bytes());
        m.extend_from_slice(&txid.to_le_bytes());
        let sum = fnv1a(&m);
        m.extend_from_slice(&sum.to_le_bytes());
        p.extend_from_slice(&m);
        p.resize(ps as usize, 0);
        p
    }

    /// A bucket's name and its key/values.
    pub type Bucket<'a> = (&'a str, Vec<(Vec<u8>, Vec<u8>)>);

    /// A file with the given buckets of key/values (each bucket one leaf page, overflow as needed).
    pub fn build(buckets: &[Bucket<'_>]) -> Vec<u8> {
        let ps = 4096usize;
        let mut pages: Vec<Vec<u8>> = Vec::new();
        // pages 0,1 meta; 2 freelist; 3 root; then buckets
        let mut next = 4u64;
        let mut bucket_pages = Vec::new();
        let mut root_items = Vec::new();
        for (name, items) in buckets {
            let its: Vec<(Vec<u8>, Vec<u8>, bool)> = items.iter().map(|(k, v)| (k.clone(), v.clone(), false)).collect();
            let pg = leaf(next, &its, ps);
            let n = (pg.len() / ps) as u64;
            let mut hdr = next.to_le_bytes().to_vec();
            hdr.extend_from_slice(&0u64.to_le_bytes());
            root_items.push((name.as_bytes().to_vec(), hdr, true));
            bucket_pages.push(pg);
            next += n;
        }
        root_items.sort();
        pages.push(meta(0, ps as u32, 3, 2, next, 10));
        pages.push(meta(1, ps as u32, 3, 2, next, 9));
        let mut fl = header(2, FREELIST_FLAG, 0, 0);
        fl.resize(ps, 0);
        pages.push(fl);
        pages.push(leaf(3, &root_items, ps));
        pages.extend(bucket_pages);
        pages.concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn items(db: &mut Db<'_>, name: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        let b = db.bucket(name).expect("bucket");
        let mut out = Vec::new();
        db.walk(b, "t", &mut |it| {
            if let Item::Value(k, v) = it {
                out.push((k.to_vec(), v.to_vec()));
            }
        });
        out
    }

    #[test]
    fn reads_buckets_and_overflow_pages() {
        let big = vec![7u8; 10_000];
        let file = testutil::build(&[
            ("key", vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), big.clone())]),
            ("meta", vec![(b"x".to_vec(), b"y".to_vec())]),
        ]);
        let mut db = Db::open(&file).unwrap();
        assert_eq!(db.meta.txid, 10);
        assert_eq!(items(&mut db, b"key"), vec![(b"a".to_vec(), b"1".to_vec()), (b"b".to_vec(), big)]);
        assert_eq!(items(&mut db, b"meta").len(), 1);
        assert!(db.freelist().is_empty());
        assert!(db.damage.is_empty(), "{:?}", db.damage);
    }

    #[test]
    fn a_bad_meta_page_falls_back_to_the_other() {
        let mut file = testutil::build(&[("key", vec![(b"a".to_vec(), b"1".to_vec())])]);
        file[16] ^= 0xff; // page 0's magic
        let mut db = Db::open(&file).unwrap();
        assert_eq!(db.meta.page, 1);
        assert_eq!(db.damage.len(), 1);
        assert_eq!(items(&mut db, b"key").len(), 1);
        file[4096 + 16] ^= 0xff;
        assert!(Db::open(&file).unwrap_err().contains("no valid meta page"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Flipped bytes and truncation never panic; whatever is read is reported or returned.
        #[test]
        fn corruption_never_panics(flips in proptest::collection::vec((0usize..30_000, any::<u8>()), 0..20), cut in 0usize..30_000) {
            let mut file = testutil::build(&[("key", (0..50u8).map(|i| (vec![i], vec![i; 300])).collect()), ("meta", vec![(b"x".to_vec(), b"y".to_vec())])]);
            for (at, b) in flips {
                if at < file.len() { file[at] ^= b; }
            }
            file.truncate(cut.min(file.len()));
            if let Ok(mut db) = Db::open(&file) {
                let _ = db.freelist();
                let root = db.root();
                let mut n = 0;
                db.walk(root, "root", &mut |it| { if let Item::Bucket(_, _) = it { n += 1; } });
                if let Some(b) = db.bucket(b"key") {
                    db.walk(b, "key", &mut |_| {});
                }
            }
        }
    }
}
