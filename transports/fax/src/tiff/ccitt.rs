//! CCITT coding of fax pages in Rust: Modified Huffman (T.4 1-D),
//! Modified READ (T.4 2-D) and Modified Modified READ (T.6), bit for bit
//! what libtiff's Group 3/Group 4 coder writes into a TIFF-F strip (an EOL
//! before every T.4 row, a 1-D/2-D tag bit after it for MR with K = 4 at
//! fine and 2 at standard resolution, EOFB after the last T.6 row; no
//! RTC (libtiff writes none in a strip), no fill bits). The code tables are those of
//! the `fax` crate.
//!
//! Why not libtiff's coder: it looks at the page a pixel at a time, and a
//! libtiff handle is one file, so pages could not be coded side by side.
//! Here runs are found 64 pixels at a time and a page is coded on its own
//! (the writer in [`super`] codes pages on several threads and hands the
//! strips to libtiff raw). The tests check the output against libtiff's
//! own coder, byte for byte.

use crate::page::{Compression, Page, Resolution};

/// Every run length up to the longest row (2624 > 2432) as one code: the
/// make-up code (if any) and the terminating code joined, `(bits, length)`
/// (at most 13 + 12 bits).
type Codes = Vec<(u32, u32)>;

/// The longest run [`Codes`] holds directly.
const RUNS: usize = 2624;

fn table(entries: &[(u16, fax::Bits); 104]) -> Codes {
    // Index n for 0–63, 63 + n / 64 for the make-up codes 64–2560.
    let code = |i: usize| (u32::from(entries[i].1.data), u32::from(entries[i].1.len));
    (0..RUNS)
        .map(|n| {
            let (tc, tl) = code(n & 63);
            if n < 64 {
                (tc, tl)
            } else {
                let (mc, ml) = code(63 + (n >> 6));
                ((mc << tl) | tc, ml + tl)
            }
        })
        .collect()
}

fn white() -> &'static Codes {
    static T: std::sync::OnceLock<Codes> = std::sync::OnceLock::new();
    T.get_or_init(|| table(&fax::maps::white::ENTRIES))
}

fn black() -> &'static Codes {
    static T: std::sync::OnceLock<Codes> = std::sync::OnceLock::new();
    T.get_or_init(|| table(&fax::maps::black::ENTRIES))
}

/// T.4 end of line: eleven 0s and a 1.
const EOL: (u32, u32) = (1, 12);
const HORIZONTAL: (u32, u32) = (1, 3);
const PASS: (u32, u32) = (1, 4);
/// Vertical mode codes for a1 − b1 = −3 … 3.
const VERTICAL: [(u32, u32); 7] = [(3, 7), (3, 6), (3, 3), (1, 1), (2, 3), (2, 6), (2, 7)];

/// A page's coded bits, most significant first, into bytes (FillOrder
/// 1): bytes `..pos` are written, the low `n` bits of `acc` (fewer than
/// 8) are pending. Rows are coded through a [`BitWriter`] holding this
/// state in locals.
struct Strip {
    out: Vec<u8>,
    pos: usize,
    acc: u64,
    n: u32,
}

impl Strip {
    fn with_capacity(n: usize) -> Strip {
        Strip {
            out: vec![0; n.max(64)],
            pos: 0,
            acc: 0,
            n: 0,
        }
    }

    /// A writer with room for `bits` more bits; [`Strip::keep`] takes its
    /// state back.
    #[inline]
    fn writer(&mut self, bits: usize) -> BitWriter<'_> {
        // A store is 8 bytes at the last byte written.
        let need = self.pos + bits.div_ceil(8) + 16;
        if need > self.out.len() {
            let len = need.max(self.out.len() * 2);
            self.out.resize(len, 0);
        }
        BitWriter {
            out: &mut self.out,
            pos: self.pos,
            acc: self.acc,
            n: self.n,
        }
    }

    #[inline]
    fn keep(&mut self, (pos, acc, n): (usize, u64, u32)) {
        (self.pos, self.acc, self.n) = (pos, acc, n);
    }

    /// Pads the last byte with 0s; the bytes written.
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            // Every put has stored the pending bits, left-aligned.
            self.pos += 1;
        }
        self.out.truncate(self.pos);
        self.out
    }
}

/// The bits of a row or two as they are written, in locals (a [`Strip`]'s
/// fields would be reloaded after every store into its bytes). Each code
/// is written at once: the pending bits and the code, left-aligned, are
/// stored as one 64-bit word at the current byte and the whole bytes
/// among them kept, so no branch depends on where the bytes end.
struct BitWriter<'a> {
    out: &'a mut [u8],
    pos: usize,
    acc: u64,
    n: u32,
}

impl BitWriter<'_> {
    /// Puts one code of at most 32 bits. [`Strip::writer`] has made the
    /// room: a store that would not fit (never expected) is dropped
    /// rather than panic.
    #[inline(always)]
    fn put(&mut self, (code, len): (u32, u32)) {
        self.acc = (self.acc << len) | u64::from(code);
        self.n += len;
        // n <= 39: shifting by 63 - n then 1 never shifts by 64.
        let word = (self.acc << (63 - self.n)) << 1;
        if let Some(dst) = self.out.get_mut(self.pos..self.pos + 8) {
            dst.copy_from_slice(&word.to_be_bytes());
        }
        self.pos += (self.n / 8) as usize;
        self.n &= 7;
    }

    /// A run of `span` pixels: make-up codes, then a terminating code
    /// (libtiff's `putspan`).
    #[inline(always)]
    fn span(&mut self, mut span: usize, tab: &Codes) {
        // Only past the widest T.4 row: 2560 make-up codes first.
        while span >= RUNS {
            let (mc, ml) = tab[2560];
            // 2560 is a make-up code followed by a terminating 0.
            let (_, tl) = tab[0];
            self.put((mc >> tl, ml - tl));
            span -= 2560;
        }
        self.put(tab[span]);
    }

    /// The state for [`Strip::keep`].
    #[inline(always)]
    fn state(self) -> (usize, u64, u32) {
        (self.pos, self.acc, self.n)
    }
}

/// Bits a row of `bits` pixels codes to at most, with its EOL: each
/// code step (at most a mode code and two runs of make-up and
/// terminating codes, 56 bits) moves past at least one pixel, but for
/// one at the start.
fn row_bound(bits: usize) -> usize {
    // Runs past 2624 pixels add a 2560 make-up code per 2560.
    16 + (bits + 2) * 56 + (bits / 2560 + 1) * 2 * 13
}

/// One row as 64-bit words, most significant bit first, 1 = black.
struct Row {
    words: Vec<u64>,
    bits: usize,
}

impl Row {
    fn new(bits: usize) -> Row {
        Row {
            words: vec![0; bits.div_ceil(64)],
            bits,
        }
    }

    fn load(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for (w, c) in self.words.iter_mut().zip(&mut chunks) {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            *w = u64::from_be_bytes(b);
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            if let Some(last) = self.words.last_mut() {
                *last = u64::from_be_bytes(b);
            }
        }
    }

    /// Whether pixel `i` is black (past the end: white).
    #[inline]
    fn pixel(&self, i: usize) -> bool {
        i < self.bits && (self.words[i / 64] >> (63 - i % 64)) & 1 == 1
    }

    /// The first pixel at or after `from` that is not `black`, or the
    /// row's end (libtiff's `finddiff`).
    #[inline]
    fn diff(&self, from: usize, black: bool) -> usize {
        let end = self.bits;
        if from >= end {
            return end;
        }
        let flip = if black { !0u64 } else { 0 };
        let mut i = from / 64;
        let mut word = (self.words[i] ^ flip) & (!0u64 >> (from % 64));
        loop {
            if word != 0 {
                return (i * 64 + word.leading_zeros() as usize).min(end);
            }
            i += 1;
            if i * 64 >= end {
                return end;
            }
            word = self.words[i] ^ flip;
        }
    }
}

/// One row, 1-D: a white run (perhaps empty), then runs of alternating
/// colours to the end (libtiff's `Fax3Encode1DRow`). The runs come from
/// the row's transitions, found a word at a time: bit j of `w ^ (w >> 1)`
/// (with the last pixel of the word before shifted in) is set where pixel
/// j differs from the one before it.
fn encode_1d(strip: &mut Strip, lead: (u32, u32), row: &Row) {
    let white = white();
    let mut w = strip.writer(row_bound(row.bits));
    w.put(lead);
    if row.words.iter().all(|&x| x == 0) {
        // A white row (most rows of a text page): one run.
        w.span(row.bits, white);
        let state = w.state();
        strip.keep(state);
        return;
    }
    let pairs = pairs();
    let mut last = 0usize;
    let mut is_black = false;
    // The white run before the black run in progress.
    let mut white_run = 0usize;
    let mut prev = 0u64;
    for (i, &word) in row.words.iter().enumerate() {
        let mut t = word ^ ((word >> 1) | (prev << 63));
        prev = word & 1;
        let base = i * 64;
        if base + 64 > row.bits {
            // Pixels past the row's end are not pixels.
            t &= !(!0u64 >> (row.bits - base));
        }
        while t != 0 {
            let p = t.leading_zeros() as usize;
            t &= !(1u64 << (63 - p));
            let at = base + p;
            let run = at - last;
            if is_black {
                put_pair(&mut w, pairs, white_run, run);
            } else {
                white_run = run;
            }
            is_black = !is_black;
            last = at;
        }
    }
    let run = row.bits - last;
    if is_black {
        put_pair(&mut w, pairs, white_run, run);
    } else {
        w.span(run, white);
    }
    let state = w.state();
    strip.keep(state);
}

/// A white run and the black run after it: one code from [`pairs`] when
/// both are shorter than 64 pixels (most runs of text), else two spans.
#[inline(always)]
fn put_pair(w: &mut BitWriter<'_>, pairs: &[u32], white_run: usize, black_run: usize) {
    match pairs.get((white_run << 6) | black_run) {
        Some(&e) if (white_run | black_run) < 64 => w.put((e >> 5, e & 31)),
        _ => {
            w.span(white_run, white());
            w.span(black_run, black());
        }
    }
}

/// The terminating codes of a white run of w and a black run of b pixels
/// (both under 64) joined, at index `w × 64 + b`: `code << 5 | length`
/// (at most 8 + 13 bits).
fn pairs() -> &'static [u32] {
    static T: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let (white, black) = (white(), black());
        (0..64 * 64)
            .map(|i| {
                let (wc, wl) = white[i >> 6];
                let (bc, bl) = black[i & 63];
                (((wc << bl) | bc) << 5) | (wl + bl)
            })
            .collect()
    })
}

/// libtiff's `Fax3Encode2DRow`, decision for decision.
fn encode_2d(strip: &mut Strip, lead: (u32, u32), row: &Row, reference: &Row) {
    let (white, black) = (white(), black());
    let bits = row.bits;
    let mut w = strip.writer(row_bound(bits));
    w.put(lead);
    let mut a0 = 0usize;
    let mut a1 = if row.pixel(0) { 0 } else { row.diff(0, false) };
    let mut b1 = if reference.pixel(0) {
        0
    } else {
        reference.diff(0, false)
    };
    loop {
        let b2 = reference.diff(b1, reference.pixel(b1));
        if b2 >= a1 {
            let d = b1 as isize - a1 as isize;
            if !(-3..=3).contains(&d) {
                let a2 = row.diff(a1, row.pixel(a1));
                w.put(HORIZONTAL);
                if a0 + a1 == 0 || !row.pixel(a0) {
                    w.span(a1 - a0, white);
                    w.span(a2 - a1, black);
                } else {
                    w.span(a1 - a0, black);
                    w.span(a2 - a1, white);
                }
                a0 = a2;
            } else {
                w.put(VERTICAL[(d + 3) as usize]);
                a0 = a1;
            }
        } else {
            w.put(PASS);
            a0 = b2;
        }
        if a0 >= bits {
            break;
        }
        let c = row.pixel(a0);
        a1 = row.diff(a0, c);
        b1 = reference.diff(a0, !c);
        b1 = reference.diff(b1, c);
    }
    let state = w.state();
    strip.keep(state);
}

/// The strip of one page coded as `compression`: what libtiff writes
/// for the page's single strip in a TIFF-F file.
pub(crate) fn encode_page(page: &Page, compression: Compression) -> Vec<u8> {
    let bits = page.width as usize;
    let stride = page.stride();
    // Dense text at fine resolution codes to about 40 KB with MH.
    let mut w = Strip::with_capacity(16 << 10);
    let mut row = Row::new(bits);
    let mut reference = Row::new(bits);
    let maxk = match page.resolution {
        Resolution::Fine => 4,
        Resolution::Standard => 2,
    };
    let mut k = maxk - 1;
    let mut one_d = true;
    for bytes in page.bits.chunks_exact(stride).take(page.height as usize) {
        row.load(bytes);
        match compression {
            Compression::Mh => encode_1d(&mut w, EOL, &row),
            Compression::Mr => {
                let eol = ((EOL.0 << 1) | u32::from(one_d), EOL.1 + 1);
                if one_d {
                    encode_1d(&mut w, eol, &row);
                    one_d = false;
                } else {
                    encode_2d(&mut w, eol, &row, &reference);
                    k -= 1;
                }
                if k == 0 {
                    one_d = true;
                    k = maxk - 1;
                } else {
                    std::mem::swap(&mut row, &mut reference);
                }
            }
            Compression::Mmr => {
                encode_2d(&mut w, (0, 0), &row, &reference);
                std::mem::swap(&mut row, &mut reference);
            }
        }
    }
    if compression == Compression::Mmr {
        // EOFB.
        let mut eofb = w.writer(64);
        eofb.put(EOL);
        eofb.put(EOL);
        let state = eofb.state();
        w.keep(state);
    }
    w.finish()
}

#[cfg(test)]
mod tests;
