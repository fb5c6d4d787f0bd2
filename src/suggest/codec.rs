//! A small, explicit binary encoding for the model snapshot: little-endian
//! integers and floats, length-prefixed strings and lists. Reading checks
//! every length against what is left, so a damaged artifact is an error,
//! never a panic or a huge allocation.

use std::io::{Read, Write};

/// Appends values to a buffer.
#[derive(Default)]
pub struct Writer(Vec<u8>);

impl Writer {
    pub fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub fn f32(&mut self, v: f32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    pub fn strings(&mut self, v: &[String]) {
        self.len(v.len());
        for s in v {
            self.len(s.len());
            self.0.extend_from_slice(s.as_bytes());
        }
    }
    pub fn u32s(&mut self, v: &[u32]) {
        self.len(v.len());
        for x in v {
            self.u32(*x);
        }
    }
    pub fn u32_lists(&mut self, v: &[Vec<u32>]) {
        self.len(v.len());
        for l in v {
            self.u32s(l);
        }
    }
    pub fn count_lists(&mut self, v: &[Vec<(u32, u32)>]) {
        self.len(v.len());
        for l in v {
            self.len(l.len());
            for (a, b) in l {
                self.u32(*a);
                self.u32(*b);
            }
        }
    }
    pub fn pair_lists<K: Copy>(&mut self, v: &[Vec<(K, f32)>], key: impl Fn(K) -> u32) {
        self.len(v.len());
        for l in v {
            self.len(l.len());
            for (a, b) in l {
                self.u32(key(*a));
                self.f32(*b);
            }
        }
    }
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

/// Reads values back, checking every length.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err("the snapshot is truncated".into());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    pub fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn i64(&mut self) -> Result<i64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }
    pub fn f32(&mut self) -> Result<f32, String> {
        Ok(f32::from_bits(self.u32()?))
    }
    /// A length, refused when the rest could not hold that many items of
    /// at least `min_size` bytes.
    fn len(&mut self, min_size: usize) -> Result<usize, String> {
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.buf.len() {
            return Err("a length in the snapshot is out of range".into());
        }
        Ok(n)
    }
    pub fn strings(&mut self) -> Result<Vec<String>, String> {
        let n = self.len(4)?;
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let len = self.len(1)?;
            let s = std::str::from_utf8(self.take(len)?)
                .map_err(|_| "a string in the snapshot is not UTF-8".to_owned())?;
            out.push(s.to_owned());
        }
        Ok(out)
    }
    pub fn u32s(&mut self) -> Result<Vec<u32>, String> {
        let n = self.len(4)?;
        (0..n).map(|_| self.u32()).collect()
    }
    pub fn u32_lists(&mut self) -> Result<Vec<Vec<u32>>, String> {
        let n = self.len(4)?;
        (0..n).map(|_| self.u32s()).collect()
    }
    pub fn count_lists(&mut self) -> Result<Vec<Vec<(u32, u32)>>, String> {
        let n = self.len(4)?;
        (0..n)
            .map(|_| {
                let m = self.len(8)?;
                (0..m).map(|_| Ok((self.u32()?, self.u32()?))).collect()
            })
            .collect()
    }
    pub fn pair_lists<K>(&mut self, key: impl Fn(u32) -> K) -> Result<Vec<Vec<(K, f32)>>, String> {
        let n = self.len(4)?;
        (0..n)
            .map(|_| {
                let m = self.len(8)?;
                (0..m)
                    .map(|_| Ok((key(self.u32()?), self.f32()?)))
                    .collect()
            })
            .collect()
    }
}

/// Deflate-compresses `raw`.
pub fn deflate(raw: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(raw);
    e.finish().unwrap_or_default()
}

/// Inflates bytes made by [`deflate`].
pub fn inflate(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|_| "the snapshot does not inflate".to_owned())?;
    Ok(out)
}
