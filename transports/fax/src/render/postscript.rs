//! PostScript attachments through ghostscript, when installed: `gs
//! -dSAFER` renders the document to a G4 TIFF at the fax resolution
//! (bounded in time, the child killed at the deadline), which is read
//! back with libtiff and placed like any document page.

use super::doc::Doc;
use super::picture::document_of;
use super::{RenderError, RenderOptions};
use crate::page::Paper;
use crate::tiff::{ReadLimits, TiffError, TiffReader};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// At most this much of ghostscript's messages is kept for an error.
const MAX_STDERR: usize = 8 * 1024;

pub(super) fn render(
    doc: &mut Doc,
    data: &[u8],
    who: &str,
    opts: &RenderOptions,
) -> Result<(), RenderError> {
    let fail = |reason: String| RenderError::Part {
        part: who.to_string(),
        reason,
    };
    let gs = match &opts.ghostscript {
        Some(p) if p.is_file() => p.clone(),
        Some(_) => return Err(RenderError::NeedsGhostscript { part: who.into() }),
        None => find_program("gs", std::env::var_os("PATH").as_deref())
            .ok_or_else(|| RenderError::NeedsGhostscript { part: who.into() })?,
    };
    let dir = tempfile::tempdir().map_err(|e| fail(format!("temporary directory: {e}")))?;
    let out = dir.path().join("pages.tif");
    let room = doc.room();
    let ydpi = doc.sheet.res.y_dpi();
    let paper = match doc.sheet.paper {
        Paper::A4 => "a4",
        Paper::Letter => "letter",
    };
    let mut cmd = Command::new(&gs);
    cmd.args([
        "-q",
        "-dSAFER",
        // The paper we fax on, whatever size the document asks for.
        "-dFIXEDMEDIA",
        "-dBATCH",
        "-dNOPAUSE",
        "-dNOPROMPT",
        "-sDEVICE=tiffg4",
        &format!("-r204x{ydpi}"),
        &format!("-sPAPERSIZE={paper}"),
        // The page at its own width (not padded to 1728 on the right):
        // centred like every other document page.
        "-dAdjustWidth=0",
        // One page more than fits: enough to tell that it does not.
        &format!("-dLastPage={}", room + 1),
    ])
    .arg(path_arg("-sOutputFile=", &out))
    .arg("-")
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .current_dir(dir.path());
    let (status, messages) = run(cmd, data, opts.ghostscript_timeout)
        .map_err(|e| fail(format!("ghostscript ({}): {e}", gs.display())))?;
    let tiff = std::fs::read(&out).unwrap_or_default();
    if !status || tiff.is_empty() {
        let msg = last_lines(&messages);
        return Err(fail(if msg.is_empty() {
            "ghostscript could not render the PostScript".into()
        } else {
            format!("ghostscript could not render the PostScript: {msg}")
        }));
    }
    let limits = ReadLimits {
        max_pages: u32::MAX,
        max_pixels: opts.max_image_pixels.max(4_000_000),
    };
    let mut reader = TiffReader::open(&tiff, &limits).map_err(|e| tiff_error(e, who))?;
    doc.check_room(reader.page_count() as usize)?;
    for i in 0..reader.page_count() {
        let page = reader.read_page(i).map_err(|e| tiff_error(e, who))?;
        let (img, w_in, h_in) = document_of(page);
        let page = doc.sheet.document_page(img, w_in, h_in);
        doc.push_page(page)?;
    }
    Ok(())
}

fn tiff_error(e: TiffError, who: &str) -> RenderError {
    RenderError::Part {
        part: who.to_string(),
        reason: format!("ghostscript's output: {e}"),
    }
}

fn path_arg(prefix: &str, p: &Path) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from(prefix);
    s.push(p.as_os_str());
    s
}

/// The executable `name` in the directories of `path` (a `PATH` value).
pub(super) fn find_program(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .filter(|d| !d.as_os_str().is_empty())
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// Runs `cmd` with `input` on its stdin; its stderr is collected. The
/// child is killed when `timeout` passes. Returns (success, stderr).
fn run(mut cmd: Command, input: &[u8], timeout: Duration) -> Result<(bool, String), String> {
    let mut child = cmd.spawn().map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout;
    // Feed stdin and drain stderr on threads of their own: a child that
    // writes much before reading must not deadlock us. They are not
    // joined: a grandchild holding a pipe open must not hold us up.
    if let Some(mut w) = child.stdin.take() {
        let input = input.to_vec();
        std::thread::spawn(move || {
            // A child that exits early closes the pipe: not our error.
            let _ = w.write_all(&input);
        });
    }
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(mut r) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut r).take(MAX_STDERR as u64).read_to_end(&mut buf);
            let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
            // Discard the rest so the child never blocks on a full pipe.
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
    }
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Ok(st.success()),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("timed out after {} s", timeout.as_secs_f32()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => break Err(e.to_string()),
        }
    };
    let messages = rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
    status.map(|ok| (ok, messages))
}

/// The last few lines of a program's messages, on one line.
fn last_lines(s: &str) -> String {
    let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(4)..].join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("gs");
        std::fs::write(&fake, "#!/bin/sh\n").unwrap();
        let p = std::env::join_paths([Path::new("/nonexistent"), dir.path()]).unwrap();
        assert_eq!(find_program("gs", Some(&p)), None, "not executable yet");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
            assert_eq!(find_program("gs", Some(&p)), Some(fake));
        }
        assert_eq!(find_program("gs", Some(OsStr::new("/nonexistent:"))), None);
        assert_eq!(find_program("gs", None), None);
    }

    #[test]
    fn a_slow_child_is_killed_at_the_deadline() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "sleep 5"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let t = Instant::now();
        let r = run(cmd, b"", Duration::from_millis(200));
        assert!(r.unwrap_err().contains("timed out"));
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
