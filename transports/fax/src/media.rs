//! The media type of a document by its file name, for documents that
//! arrive without one (`faxmta fax send`, the HTTP API's parts).

/// The media type we give a file, by the extension of its name (for
/// `faxmta fax send` and the HTTP API's parts that name none).
pub fn media_type(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "pdf" => "application/pdf",
        "ps" | "eps" => "application/postscript",
        "tif" | "tiff" => "image/tiff",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "txt" | "text" => "text/plain",
        "html" | "htm" => "text/html",
        _ => "application/octet-stream",
    }
}
