//! Configuration errors: [`ConfigError`], which names the file and the
//! line and column of the fault, and [`Source`], the file's text that
//! every section's validation reports against.

use std::path::Path;

/// A configuration error with its place in the file.
#[derive(Debug, thiserror::Error)]
#[error("{file}{place}: {message}")]
pub struct ConfigError {
    pub file: String,
    pub place: String,
    pub message: String,
}

impl ConfigError {
    pub(super) fn at(
        file: &Path,
        text: &str,
        span: Option<std::ops::Range<usize>>,
        message: String,
    ) -> Self {
        let place = match span {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
                format!(":{line}:{col}")
            }
            None => String::new(),
        };
        ConfigError {
            file: file.display().to_string(),
            place,
            message,
        }
    }
}

/// Errors at the first line of the file that holds one of the needles.
pub(super) struct Source<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Source<'_> {
    pub fn fail(&self, needles: &[&str], message: String) -> ConfigError {
        let span = needles
            .iter()
            .find_map(|n| self.text.find(n).map(|p| p..p + n.len()));
        ConfigError::at(self.path, self.text, span, message)
    }
}
