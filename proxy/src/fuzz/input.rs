//! Reading a fuzz input: a few leading bytes choose options and where to
//! cut the payload; the rest is the payload.

/// A fuzz input being read from the front.
pub(crate) struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub(crate) fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// Up to 7 cut points (offsets into the payload, taken modulo its
    /// length when cutting).
    pub(crate) fn splits(&mut self) -> Vec<usize> {
        let n = self.byte() % 8;
        (0..n)
            .map(|_| usize::from(u16::from_le_bytes([self.byte(), self.byte()])))
            .collect()
    }

    pub(crate) fn rest(self) -> &'a [u8] {
        self.data
    }
}

/// Cuts `data` at `splits` (each modulo the length, sorted); no cut gives
/// the whole as one piece.
pub(crate) fn cut<'d>(data: &'d [u8], splits: &[usize]) -> Vec<&'d [u8]> {
    let mut at: Vec<usize> = splits
        .iter()
        .map(|s| s % data.len().max(1))
        .filter(|&s| s > 0)
        .collect();
    at.sort_unstable();
    at.dedup();
    let mut pieces = Vec::with_capacity(at.len() + 1);
    let mut from = 0;
    for s in at {
        pieces.push(&data[from..s]);
        from = s;
    }
    pieces.push(&data[from..]);
    pieces
}

/// [`cut`] for text, moving each cut back to a character boundary.
pub(crate) fn cut_str<'t>(text: &'t str, splits: &[usize]) -> Vec<&'t str> {
    let bounded: Vec<usize> = splits
        .iter()
        .map(|s| {
            let mut s = s % text.len().max(1);
            while !text.is_char_boundary(s) {
                s -= 1;
            }
            s
        })
        .collect();
    cut(text.as_bytes(), &bounded)
        .into_iter()
        .map(|p| std::str::from_utf8(p).expect("cut at character boundaries"))
        .collect()
}
