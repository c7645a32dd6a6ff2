//! Tests of the TIFF writer and reader, checked against libtiff's own
//! tools (`tiffinfo`, `tiffcp`, `ppm2tiff` from libtiff-tools).

use super::*;
use std::process::Command;

/// A page with something on every scale: a frame, a checkerboard, thin
/// lines, and pseudo-random noise (hard to code, catches bit errors).
fn pattern_page(res: Resolution, height: u32) -> Page {
    let mut p = Page::blank(FAX_WIDTH, height, res);
    let mut seed: u32 = 0x1234_5678;
    for y in 0..height {
        for x in 0..FAX_WIDTH {
            let black = if !(4..FAX_WIDTH - 4).contains(&x) || !(4..height - 4).contains(&y) {
                true
            } else if y < height / 3 {
                (x / 16 + y / 16) % 2 == 0
            } else if y < 2 * height / 3 {
                x % 97 == 0 || y % 53 == 0
            } else {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed.is_multiple_of(5)
            };
            p.set(x, y, black);
        }
    }
    p
}

fn tool(name: &str, args: &[&std::ffi::OsStr]) -> (String, String, bool) {
    let out = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} (libtiff-tools) must be installed: {e}"));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn round_trip_every_compression() {
    let pages = vec![
        pattern_page(Resolution::Fine, 400),
        pattern_page(Resolution::Standard, 300),
    ];
    for c in [Compression::Mh, Compression::Mr, Compression::Mmr] {
        let bytes = encode_tiff_f(&pages, c, &TiffHeader::default()).unwrap();
        let back = decode_tiff(&bytes, &ReadLimits::default()).unwrap();
        assert_eq!(back.len(), 2, "{c:?}");
        for (orig, read) in pages.iter().zip(&back) {
            assert_eq!((read.width, read.height), (orig.width, orig.height));
            assert_eq!(read.fax_resolution(), Some(orig.resolution), "{c:?}");
            let page = read.to_fax_page().expect("a fax page");
            assert!(page == *orig, "{c:?}: pixels differ after the round trip");
        }
    }
}

#[test]
fn tiffinfo_accepts_output_and_shows_profile_f_tags() {
    let dir = tempfile::tempdir().unwrap();
    let pages = vec![
        pattern_page(Resolution::Fine, 200),
        pattern_page(Resolution::Fine, 200),
    ];
    let header = TiffHeader {
        description: Some("job 42".into()),
        date_time: Some("2024:02:29 12:34:56".into()),
        ..TiffHeader::default()
    };
    for (c, scheme, options) in [
        (
            Compression::Mh,
            "CCITT Group 3",
            Some("Group 3 Options: (0 = 0x0)"),
        ),
        (
            Compression::Mr,
            "CCITT Group 3",
            Some("Group 3 Options: 2-d encoding (1 = 0x1)"),
        ),
        (
            Compression::Mmr,
            "CCITT Group 4",
            Some("Group 4 Options: (0 = 0x0)"),
        ),
    ] {
        let path = dir.path().join(format!("{c:?}.tif"));
        write_tiff_f(&path, &pages, c, &header).unwrap();
        let (out, err, ok) = tool("tiffinfo", &["-D".as_ref(), path.as_os_str()]);
        assert!(ok && err.is_empty(), "{c:?}: tiffinfo complained: {err}");
        for want in [
            "Subfile Type: multi-page document (2 = 0x2)",
            "Image Width: 1728 Image Length: 200",
            "Resolution: 204, 196 pixels/inch",
            "Bits/Sample: 1",
            "Samples/Pixel: 1",
            "Photometric Interpretation: min-is-white",
            "FillOrder: msb-to-lsb",
            "Rows/Strip: 200",
            "Page Number: 0-2",
            "Page Number: 1-2",
            "Software: faxmta",
            "DateTime: 2024:02:29 12:34:56",
            "ImageDescription: job 42",
            scheme,
        ] {
            assert!(out.contains(want), "{c:?}: no {want:?} in\n{out}");
        }
        if let Some(o) = options {
            assert!(out.contains(o), "{c:?}: no {o:?} in\n{out}");
        }
        assert_eq!(out.matches("Image Width").count(), 2, "two directories");
        // No stray temporary file is left beside the output.
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert!(names.len() <= 3);
    }
}

#[test]
fn reads_fill_order_2_without_rows_per_strip_like_spandsp_writes() {
    let dir = tempfile::tempdir().unwrap();
    let page = pattern_page(Resolution::Fine, 120);
    let src = dir.path().join("src.tif");
    write_tiff_f(
        &src,
        std::slice::from_ref(&page),
        Compression::Mh,
        &TiffHeader::default(),
    )
    .unwrap();
    let lsb = dir.path().join("lsb.tif");
    let (_, err, ok) = tool(
        "tiffcp",
        &[
            "-f".as_ref(),
            "lsb2msb".as_ref(),
            "-c".as_ref(),
            "g4".as_ref(),
            src.as_os_str(),
            lsb.as_os_str(),
        ],
    );
    assert!(ok, "tiffcp: {err}");
    let (info, _, _) = tool("tiffinfo", &[lsb.as_os_str()]);
    assert!(info.contains("FillOrder: lsb-to-msb"), "{info}");
    let mut bytes = std::fs::read(&lsb).unwrap();
    remove_rows_per_strip(&mut bytes);
    let back = decode_tiff(&bytes, &ReadLimits::default()).unwrap();
    assert_eq!(back.len(), 1);
    assert!(back[0].to_fax_page().unwrap() == page, "pixels differ");
}

/// Renames tag 278 (RowsPerStrip) of the first IFD of a little-endian
/// classic TIFF to an unknown private tag, as if it were absent.
fn remove_rows_per_strip(b: &mut [u8]) {
    assert_eq!(&b[..4], b"II*\0", "test expects a little-endian TIFF");
    let ifd = u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as usize;
    let n = u16::from_le_bytes([b[ifd], b[ifd + 1]]) as usize;
    for i in 0..n {
        let e = ifd + 2 + 12 * i;
        if u16::from_le_bytes([b[e], b[e + 1]]) == 278 {
            b[e..e + 2].copy_from_slice(&65000u16.to_le_bytes());
            return;
        }
    }
    panic!("no RowsPerStrip entry");
}

#[test]
fn reads_colour_lzw_and_tiled_files_as_gray() {
    let dir = tempfile::tempdir().unwrap();
    // 4×2 PPM: red, green, blue, white / black, grey, white, black.
    let mut ppm = b"P6\n4 2\n255\n".to_vec();
    for px in [
        [255, 0, 0],
        [0, 255, 0],
        [0, 0, 255],
        [255, 255, 255],
        [0, 0, 0],
        [128, 128, 128],
        [255, 255, 255],
        [0, 0, 0],
    ] {
        ppm.extend_from_slice(&px);
    }
    let ppm_path = dir.path().join("c.ppm");
    std::fs::write(&ppm_path, &ppm).unwrap();
    let tif = dir.path().join("c.tif");
    let (_, err, ok) = tool(
        "ppm2tiff",
        &[
            "-c".as_ref(),
            "lzw".as_ref(),
            "-R".as_ref(),
            "300".as_ref(),
            ppm_path.as_os_str(),
            tif.as_os_str(),
        ],
    );
    assert!(ok, "ppm2tiff: {err}");
    let pages = read_tiff(&tif).unwrap();
    assert_eq!(pages.len(), 1);
    let p = &pages[0];
    assert_eq!((p.width, p.height), (4, 2));
    assert!(matches!(p.pixels, Pixels::Gray(_)));
    assert_eq!(p.x_dpi, Some(300.0));
    let g: Vec<u8> = (0..2)
        .flat_map(|y| (0..4).map(move |x| (x, y)))
        .map(|(x, y)| p.gray_at(x, y))
        .collect();
    // Luminance: red ≈ 76, green ≈ 149, blue ≈ 28.
    assert!((70..=82).contains(&g[0]), "{g:?}");
    assert!((140..=155).contains(&g[1]), "{g:?}");
    assert!((22..=34).contains(&g[2]), "{g:?}");
    assert_eq!((g[3], g[4], g[6], g[7]), (255, 0, 255, 0), "{g:?}");
    assert!((120..=135).contains(&g[5]), "{g:?}");

    // A tiled bilevel file goes through the RGBA reader: same picture.
    let page = pattern_page(Resolution::Fine, 64);
    let src = dir.path().join("b.tif");
    write_tiff_f(
        &src,
        std::slice::from_ref(&page),
        Compression::Mmr,
        &TiffHeader::default(),
    )
    .unwrap();
    let tiled = dir.path().join("t.tif");
    let (_, err, ok) = tool(
        "tiffcp",
        &["-t".as_ref(), src.as_os_str(), tiled.as_os_str()],
    );
    assert!(ok, "tiffcp -t: {err}");
    let back = &read_tiff(&tiled).unwrap()[0];
    assert!(matches!(back.pixels, Pixels::Gray(_)));
    for y in 0..64 {
        for x in 0..FAX_WIDTH {
            let want = if page.get(x, y) { 0 } else { 255 };
            assert_eq!(back.gray_at(x, y), want, "({x}, {y})");
        }
    }
}

#[test]
fn limits_and_garbage_give_errors_not_panics() {
    let pages = vec![pattern_page(Resolution::Fine, 50); 3];
    let bytes = encode_tiff_f(&pages, Compression::Mmr, &TiffHeader::default()).unwrap();
    let few = ReadLimits {
        max_pages: 2,
        ..ReadLimits::default()
    };
    assert!(matches!(
        decode_tiff(&bytes, &few),
        Err(TiffError::TooManyPages { pages: 3, limit: 2 })
    ));
    let small = ReadLimits {
        max_pixels: 1728 * 49,
        ..ReadLimits::default()
    };
    let e = decode_tiff(&bytes, &small).unwrap_err();
    assert!(e.to_string().contains("1728×50"), "{e}");

    let e = decode_tiff(b"this is not a TIFF file at all", &ReadLimits::default()).unwrap_err();
    assert!(matches!(e, TiffError::Libtiff { .. }), "{e}");
    assert!(!e.to_string().is_empty());
    // Truncated: header and first IFD survive, the data does not.
    let cut = &bytes[..bytes.len() / 3];
    assert!(decode_tiff(cut, &ReadLimits::default()).is_err());

    let narrow = Page::blank(1000, 10, Resolution::Fine);
    let e = encode_tiff_f(&[narrow], Compression::Mh, &TiffHeader::default()).unwrap_err();
    assert!(e.to_string().contains("1000 pixels wide"), "{e}");
    assert!(matches!(
        encode_tiff_f(&[], Compression::Mh, &TiffHeader::default()),
        Err(TiffError::NoPages)
    ));
}

#[test]
fn tiff_dates() {
    assert_eq!(tiff_date(0), "1970:01:01 00:00:00");
    assert_eq!(tiff_date(951_782_400 + 3661), "2000:02:29 01:01:01");
    assert_eq!(tiff_date(1_735_689_599), "2024:12:31 23:59:59");
}
