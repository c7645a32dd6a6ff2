//! Pictures of fax pages for screens (the web portal's preview and
//! history): a TIFF page scaled to a given width as a grey PNG, its
//! height corrected for the fax's tall standard-resolution pixels.

use crate::tiff::{Pixels, ReadLimits, ReadPage, TiffReader};

/// Page `index` (0-based) of the TIFF file `data` as a PNG `width`
/// pixels wide; with the document's page count.
pub fn tiff_page_png(data: &[u8], index: u32, width: u32) -> Result<(Vec<u8>, u32), String> {
    let mut reader = TiffReader::open(data, &ReadLimits::default()).map_err(|e| e.to_string())?;
    let count = reader.page_count();
    if index >= count {
        return Err(format!("no page {} (the fax has {count})", index + 1));
    }
    let page = reader.read_page(index).map_err(|e| e.to_string())?;
    let png = page_png(&page, width).ok_or("the page has no pixels")?;
    Ok((png, count))
}

/// Every page of `data` (at most `limit`) as PNGs `width` pixels wide;
/// with the page count.
pub fn tiff_pngs(data: &[u8], width: u32, limit: u32) -> Result<(Vec<Vec<u8>>, u32), String> {
    let mut reader = TiffReader::open(data, &ReadLimits::default()).map_err(|e| e.to_string())?;
    let count = reader.page_count();
    let mut out = Vec::new();
    for i in 0..count.min(limit) {
        let page = reader.read_page(i).map_err(|e| e.to_string())?;
        out.push(page_png(&page, width).ok_or("a page has no pixels")?);
    }
    Ok((out, count))
}

/// `page` scaled to `width` pixels (each pixel the average of the block
/// it covers), as a grey PNG.
pub fn page_png(page: &ReadPage, width: u32) -> Option<Vec<u8>> {
    if page.width == 0 || page.height == 0 || width == 0 {
        return None;
    }
    // The page's height in pixels of its own width: a standard fax row is
    // about twice as tall as a pixel is wide.
    let aspect = match (page.x_dpi, page.y_dpi) {
        (Some(x), Some(y)) if x > 0.0 && y > 0.0 => x / y,
        _ => 1.0,
    };
    let width = width.min(page.width);
    let scale = page.width as f32 / width as f32;
    let height = ((page.height as f32 * aspect) / scale).round().max(1.0) as u32;
    let mut grey = image::GrayImage::new(width, height);
    for y in 0..height {
        let y0 = ((y as f32 * scale / aspect) as u32).min(page.height - 1);
        let y1 = (((y + 1) as f32 * scale / aspect) as u32).clamp(y0 + 1, page.height);
        for x in 0..width {
            let x0 = ((x as f32 * scale) as u32).min(page.width - 1);
            let x1 = (((x + 1) as f32 * scale) as u32).clamp(x0 + 1, page.width);
            let (mut sum, mut n) = (0u32, 0u32);
            for yy in y0..y1 {
                for xx in x0..x1 {
                    sum += u32::from(luma(page, xx, yy));
                    n += 1;
                }
            }
            grey.put_pixel(x, y, image::Luma([(sum / n.max(1)) as u8]));
        }
    }
    let mut out = std::io::Cursor::new(Vec::new());
    grey.write_to(&mut out, image::ImageFormat::Png).ok()?;
    Some(out.into_inner())
}

/// 0 = black, 255 = white.
fn luma(page: &ReadPage, x: u32, y: u32) -> u8 {
    match &page.pixels {
        Pixels::Bilevel(bits) => {
            let row = page.width.div_ceil(8) as usize;
            let byte = bits[y as usize * row + (x / 8) as usize];
            match byte & (0x80 >> (x % 8)) {
                0 => 255,
                _ => 0,
            }
        }
        Pixels::Gray(g) => g[y as usize * page.width as usize + x as usize],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_standard_page_is_drawn_at_its_real_proportions() {
        // 1728 × 1100 rows at 204 × 98 dpi: an A4 page, the left half black.
        let (w, h) = (1728u32, 1100u32);
        let row = (w / 8) as usize;
        let mut bits = vec![0u8; row * h as usize];
        for y in 0..h as usize {
            for b in &mut bits[y * row..y * row + row / 2] {
                *b = 0xff;
            }
        }
        let page = ReadPage {
            width: w,
            height: h,
            x_dpi: Some(204.0),
            y_dpi: Some(98.0),
            description: None,
            pixels: Pixels::Bilevel(bits),
        };
        let png = page_png(&page, 216).unwrap();
        let img = image::load_from_memory(&png).unwrap().to_luma8();
        assert_eq!(img.width(), 216);
        // 1100 rows × 204/98 ≈ 2290 square pixels, / 8.
        assert!((284..=288).contains(&img.height()), "{}", img.height());
        assert_eq!(img.get_pixel(10, 100).0[0], 0, "left half black");
        assert_eq!(img.get_pixel(200, 100).0[0], 255, "right half white");
    }
}
