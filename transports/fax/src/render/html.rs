//! HTML reduced to plain text for the text flow: html2text (tables
//! drawn with box lines, headings marked `#`, links numbered with their
//! targets listed at the end, no `**` or `*` around bold and italics),
//! except for absurdly deep nesting, which costs html5ever
//! time quadratic in the depth (100 000 nested `<div>` take over a
//! minute); such HTML is stripped of its tags in one linear pass instead.

/// Nesting deeper than this is not given to html2text.
const MAX_DEPTH: usize = 512;

/// HTML as plain text, wrapped at `cols` (the stripped fallback is not
/// wrapped: the text flow does that).
pub(super) fn to_text(html: &str, cols: usize) -> Result<String, String> {
    if nesting_depth(html) > MAX_DEPTH {
        return Ok(strip_tags(html));
    }
    html2text::config::plain_no_decorate()
        .link_footnotes(true)
        .string_from_read(html.as_bytes(), cols)
        .map_err(|e| format!("cannot read the HTML: {e}"))
}

/// Elements without content or whose end tag may be left out: they do
/// not nest.
const NON_NESTING: &[&str] = &[
    "area", "base", "br", "col", "colgroup", "dd", "dt", "embed", "hr", "img", "input", "li",
    "link", "meta", "option", "optgroup", "p", "param", "rp", "rt", "source", "tbody", "td",
    "tfoot", "th", "thead", "tr", "track", "wbr",
];

/// The deepest nesting of elements, estimated from start and end tags.
fn nesting_depth(html: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for tag in tags(html) {
        if NON_NESTING.contains(&tag.name.as_str()) || tag.self_closing {
            continue;
        }
        if tag.end {
            depth = depth.saturating_sub(1);
        } else {
            depth += 1;
            max = max.max(depth);
        }
    }
    max
}

struct Tag {
    name: String,
    end: bool,
    self_closing: bool,
}

/// The tags of `html` (comments and declarations skipped).
fn tags(html: &str) -> impl Iterator<Item = Tag> + '_ {
    let mut rest = html;
    std::iter::from_fn(move || loop {
        let start = rest.find('<')?;
        let after = &rest[start + 1..];
        if let Some(c) = after.strip_prefix("!--") {
            rest = c.find("-->").map_or("", |e| &c[e + 3..]);
            continue;
        }
        let end = after.find('>').unwrap_or(after.len());
        let inner = &after[..end];
        rest = after.get(end + 1..).unwrap_or("");
        let (is_end, body) = match inner.strip_prefix('/') {
            Some(b) => (true, b),
            None => (false, inner),
        };
        let name: String = body
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        if name.is_empty() {
            continue; // `<!DOCTYPE`, `<?xml`, a stray `<`
        }
        return Some(Tag {
            name,
            end: is_end,
            self_closing: inner.ends_with('/'),
        });
    })
}

/// The text of `html` without its tags: block elements end lines, a few
/// entities decoded, `<script>`/`<style>` contents dropped.
fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len() / 2);
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while let Some(start) = rest.find('<') {
        if skip_until.is_none() {
            out.push_str(&decode_entities(&rest[..start]));
        }
        let after = &rest[start + 1..];
        let end = after.find('>').map_or(after.len(), |e| e + 1);
        let inner = after[..end].trim_end_matches('>').to_ascii_lowercase();
        rest = &after[end..];
        let name = inner
            .trim_start_matches('/')
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or("");
        match skip_until {
            Some(stop) if inner.starts_with('/') && name == stop => skip_until = None,
            Some(_) => {}
            None if name == "script" || name == "style" => {
                skip_until = Some(if name == "script" { "script" } else { "style" });
            }
            None if is_block(name) && !out.ends_with('\n') => out.push('\n'),
            None if name == "td" || name == "th" => out.push(' '),
            None => {}
        }
    }
    if skip_until.is_none() {
        out.push_str(&decode_entities(rest));
    }
    out
}

/// Elements that end a line of text.
fn is_block(name: &str) -> bool {
    matches!(
        name,
        "br" | "p"
            | "div"
            | "tr"
            | "li"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "table"
            | "blockquote"
            | "pre"
            | "hr"
    )
}

fn decode_entities(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let semi = after.find(';').filter(|&n| n <= 10);
        let decoded = semi.and_then(|n| {
            let name = &after[..n];
            let ch = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            ch.map(|c| (c, n))
        });
        match decoded {
            Some((c, n)) => {
                out.push(c);
                rest = &after[n + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_is_estimated_from_tags() {
        assert_eq!(nesting_depth("<div><div><b>x</b></div></div>"), 3);
        assert_eq!(nesting_depth("<p>a<p>b<p>c<br><img src=x>"), 0);
        assert_eq!(nesting_depth("<!-- <div><div> --><span/>"), 0);
        let deep = "<div>".repeat(600) + "x";
        assert_eq!(nesting_depth(&deep), 600);
    }

    #[test]
    fn deep_html_is_stripped_quickly() {
        let deep = "<div>".repeat(100_000) + "deep &amp; <b>bold</b>" + &"</div>".repeat(100_000);
        let t = std::time::Instant::now();
        let text = to_text(&deep, 80).unwrap();
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        assert_eq!(text.trim(), "deep & bold");
    }

    #[test]
    fn ordinary_html_goes_through_html2text() {
        let text = to_text(
            "<h1>Title</h1><p>Hello <b>there</b> &amp; <a href=\"http://x.test/\">link</a></p>",
            80,
        )
        .unwrap();
        assert!(text.contains("# Title"), "{text}");
        assert!(text.contains("Hello there & [link][1]"), "{text}");
        assert!(text.contains("[1]: http://x.test/"), "{text}");
        assert!(!text.contains("**"), "{text}");
    }

    #[test]
    fn stripping_keeps_lines_and_drops_scripts() {
        let t = strip_tags(
            "<style>p{}</style><p>One</p><p>Two &lt;3 &#x41;&#66;</p><script>x()</script>end",
        );
        assert_eq!(t, "\nOne\nTwo <3 AB\nend");
    }
}
