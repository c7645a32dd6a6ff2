//! Links the C libraries behind the fax line: spandsp (the software fax
//! modem, T.30/T.4) and libtiff (TIFF Class F files; spandsp needs it
//! too). Both come from Debian's libspandsp-dev and libtiff-dev, which
//! `scripts/serve` and `scripts/test` install when missing.
//!
//! It also bakes the message-text faces (DejaVu Sans Mono and its bold) at
//! the default text size, fine and standard resolution, for the common
//! characters: rasterised by fontdue and squashed to the fax grid by the
//! same code as at run time (`src/render/glyph_bits.rs`), so a text fax
//! parses no font when it starts (fontdue reads every glyph of a face when
//! it loads one, ~15 ms for the two faces).

#[cfg(feature = "line")]
#[path = "src/render/glyph_bits.rs"]
#[allow(dead_code)]
mod glyph_bits;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/render/glyph_bits.rs");
    // A build without the line (feature `line`) links neither.
    if std::env::var_os("CARGO_FEATURE_LINE").is_none() {
        return;
    }
    #[cfg(feature = "line")]
    bake_text_glyphs();
    // libtiff 4.5: per-handle error handlers (TIFFOpenOptions), which keep
    // its messages out of stderr and in our errors.
    for (lib, version) in [("spandsp", "0.0.6"), ("libtiff-4", "4.5")] {
        if let Err(e) = pkg_config::Config::new()
            .atleast_version(version)
            .probe(lib)
        {
            println!(
                "cargo:warning=faxmta: {lib} not found ({e}); install libspandsp-dev and \
                 libtiff-dev (scripts/serve and scripts/test do it)"
            );
            std::process::exit(1);
        }
    }
}

/// The text size baked, in points: [`RenderOptions`]' default
/// `font_size` (other sizes are rasterised at run time).
#[cfg(feature = "line")]
const BAKED_PT: f32 = 10.0;

/// Characters baked: ASCII, Latin-1, Latin Extended-A, general
/// punctuation, the euro and trade mark signs, box drawing (those the
/// face has; the rest is rasterised at run time).
#[cfg(feature = "line")]
fn baked_chars() -> impl Iterator<Item = char> {
    [
        0x20..=0x7e,
        0xa0..=0x17f,
        0x2010..=0x203a,
        0x20ac..=0x20ac,
        0x2122..=0x2122,
        0x2500..=0x257f,
    ]
    .into_iter()
    .flatten()
    .filter_map(char::from_u32)
}

/// Writes `text_glyphs.rs` (one `BakedSet` per face and resolution) and
/// `text_glyphs.bin` (their bits) to `OUT_DIR`; `src/render/baked.rs`
/// includes them.
#[cfg(feature = "line")]
fn bake_text_glyphs() {
    use fontdue::{Font, FontSettings};
    use std::fmt::Write;
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    // As `Typesetter::em` and `Typesetter::new` compute them.
    const X_DPI: u32 = 204;
    let em = BAKED_PT * X_DPI as f32 / 72.0;
    let mut bin: Vec<u8> = Vec::new();
    let mut src = String::new();
    let _ = writeln!(src, "/// The baked size: pixels across per em.");
    let _ = writeln!(
        src,
        "pub const EM: f32 = f32::from_bits({:#x});",
        em.to_bits()
    );
    let _ = writeln!(src, "pub static SETS: &[BakedSet] = &[");
    let faces: [(&str, &[u8]); 2] = [
        ("Mono", dejavu::sans_mono::regular()),
        ("MonoBold", dejavu::sans_mono::bold()),
    ];
    for (name, data) in faces {
        let font = Font::from_bytes(data, FontSettings::default()).expect("DejaVu parses");
        let lm = font.horizontal_line_metrics(em).expect("line metrics");
        for y_dpi in [196u32, 98] {
            let sq = y_dpi as f32 / X_DPI as f32;
            let _ = writeln!(
                src,
                "BakedSet {{ face: Face::{name}, squash1024: {}, new_line_size: f32::from_bits({:#x}), \
                 ascent: f32::from_bits({:#x}), glyphs: &[",
                (sq * 1024.0).round() as u32,
                lm.new_line_size.to_bits(),
                lm.ascent.to_bits()
            );
            for ch in baked_chars().filter(|&c| font.has_glyph(c)) {
                let (m, cov) = font.rasterize(ch, em);
                let (h, top, w, offset) = if m.width == 0 || m.height == 0 {
                    (0, 0, 0, bin.len())
                } else {
                    let s = glyph_bits::squash(m.width, m.height, m.ymin, &cov, sq);
                    let offset = bin.len();
                    bin.extend_from_slice(&s.bits);
                    (s.h, s.top, m.width as u32, offset)
                };
                let _ = writeln!(
                    src,
                    "BakedGlyph {{ ch: {:?}, offset: {offset}, w: {w}, h: {h}, left: {}, top: {top}, \
                     advance: f32::from_bits({:#x}) }},",
                    ch,
                    m.xmin,
                    m.advance_width.to_bits()
                );
            }
            let _ = writeln!(src, "] }},");
        }
    }
    let _ = writeln!(src, "];");
    std::fs::write(out.join("text_glyphs.rs"), src).expect("write text_glyphs.rs");
    std::fs::write(out.join("text_glyphs.bin"), bin).expect("write text_glyphs.bin");
}
