//! Little-endian bytes in and out, for what the shared index writes to
//! Redis ([`super::shared`]): fixed-width integers, `f32` vectors and
//! length-prefixed strings. Reading never panics and never allocates more
//! than the bytes it was given can fill, whatever they say.

/// Appends to a byte buffer.
pub(crate) struct Writer<'a>(pub(crate) &'a mut Vec<u8>);

impl Writer<'_> {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }

    /// A length (`u32`), then the floats.
    pub(crate) fn f32s(&mut self, v: &[f32]) {
        self.len(v.len());
        self.0.reserve(v.len() * 4);
        for x in v {
            self.0.extend_from_slice(&x.to_le_bytes());
        }
    }

    pub(crate) fn u64s(&mut self, v: &[u64]) {
        self.len(v.len());
        for x in v {
            self.u64(*x);
        }
    }

    /// A length (`u32`), then the UTF-8 bytes.
    pub(crate) fn str(&mut self, s: &str) {
        self.len(s.len());
        self.bytes(s.as_bytes());
    }

    /// A count; nothing in a prompt comes near `u32::MAX`.
    pub(crate) fn len(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
}

/// Reads from a byte slice; `None` once it runs short.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.array()?))
    }

    /// A count of items of `size` bytes each that the rest can hold.
    pub(crate) fn len(&mut self, size: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.checked_mul(size)? <= self.0.len()).then_some(n)
    }

    /// Finite floats only: a vector with a NaN could never be similar.
    pub(crate) fn f32s(&mut self) -> Option<Vec<f32>> {
        let n = self.len(4)?;
        let bytes = self.take(n * 4)?;
        bytes
            .chunks_exact(4)
            .map(|c| Some(f32::from_le_bytes(c.try_into().ok()?)).filter(|x| x.is_finite()))
            .collect()
    }

    pub(crate) fn u64s(&mut self) -> Option<Vec<u64>> {
        let n = self.len(8)?;
        (0..n).map(|_| self.u64()).collect()
    }

    pub(crate) fn str(&mut self) -> Option<&'a str> {
        let n = self.len(1)?;
        std::str::from_utf8(self.take(n)?).ok()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
