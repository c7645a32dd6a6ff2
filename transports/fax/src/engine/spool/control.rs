//! The control files of the spool engine: small `key: value` text files
//! (one pair a line, as in HylaFAX's q-files), and what they mean.
//!
//! - `JOBID.job` (we write, in `outgoing/`): the job for the board;
//! - `JOBID.status` (the board writes, in `status/`): how the job ended,
//!   read into a [`SendResult`];
//! - `NAME.rx` (the board writes, in `incoming/`): a fax that came in,
//!   read into the fields of a [`super::super::ReceivedFax`].
//!
//! Reading: keys are case-insensitive, `-` and `_` are the same; blank
//! lines and lines starting with `#` are ignored; unknown keys are
//! ignored (a board may add its own); a key given twice: the last wins.
//! The whole file is at most [`MAX_CONTROL`] bytes of UTF-8.

use super::super::{Reception, SendRequest, SendResult};
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The largest control file read.
pub const MAX_CONTROL: u64 = 64 * 1024;

/// A parsed control file.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Control {
    values: HashMap<String, String>,
}

impl Control {
    /// Parses `text`; a non-blank, non-comment line without `:` is an error.
    pub fn parse(text: &str) -> Result<Control, String> {
        let mut values = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once(':') else {
                return Err(format!("line {}: expected `key: value`", n + 1));
            };
            values.insert(key_name(key), value.trim().to_owned());
        }
        Ok(Control { values })
    }

    /// The value of the first of `keys` present and not empty.
    pub fn get(&self, keys: &[&str]) -> Option<&str> {
        keys.iter()
            .filter_map(|k| self.values.get(&key_name(k)))
            .map(String::as_str)
            .find(|v| !v.is_empty())
    }

    /// A whole number, if present; present but not a number is an error.
    pub fn number(&self, key: &str) -> Result<Option<u32>, String> {
        self.get(&[key])
            .map(|v| {
                v.parse()
                    .map_err(|_| format!("{key}: {v:?} is not a number"))
            })
            .transpose()
    }

    /// Seconds (`42`, `42.5`), if present.
    pub fn seconds(&self, key: &str) -> Result<Option<Duration>, String> {
        self.get(&[key])
            .map(|v| {
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
                    .map(Duration::from_secs_f64)
                    .ok_or_else(|| format!("{key}: {v:?} is not a number of seconds"))
            })
            .transpose()
    }
}

fn key_name(key: &str) -> String {
    key.trim().to_ascii_lowercase().replace('-', "_")
}

/// A value made safe for one line: control characters become spaces.
pub fn one_line(value: &str) -> String {
    value
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The text of `JOBID.job`. `id` is the file name's stem, `document` the
/// TIFF's file name beside it.
pub fn job_file(id: &str, request: &SendRequest, document: &str, submitted: SystemTime) -> String {
    let mut text = String::from("# faxmta fax job (docs/configuration.md, engine = \"spool\")\n");
    let mut put = |key: &str, value: &str| {
        text.push_str(key);
        text.push_str(": ");
        text.push_str(&one_line(value));
        text.push('\n');
    };
    put("id", id);
    put("job", &request.job_id);
    put("number", &request.dial);
    put("document", document);
    put("first_page", &request.first_page.to_string());
    put("pages", &request.pages.to_string());
    put("tsi", &request.tsi);
    put("header", request.header.as_deref().unwrap_or(""));
    // DTMF digits to dial once the far end answered (`,` a pause), and the
    // T.33 subaddress for the SUB frame: only when the address had them.
    if let Some(ext) = &request.extension {
        put("extension", ext);
    }
    if let Some(sub) = &request.subaddress {
        put("subaddress", sub);
    }
    put("submitted", &rfc3339(submitted));
    text
}

/// `JOBID.status` as a [`SendResult`]. `to_send`: the pages of the job
/// (the default of `pages` for `result: sent`).
pub fn status_result(control: &Control, to_send: u32) -> Result<SendResult, String> {
    let result = control
        .get(&["result"])
        .ok_or("no `result`")?
        .to_ascii_lowercase();
    let duration = control.seconds("duration")?.unwrap_or_default();
    let csid = control.get(&["csid"]).unwrap_or("").to_owned();
    let reason = |default: &str| control.get(&["reason"]).unwrap_or(default).to_owned();
    Ok(match result.as_str() {
        "sent" | "ok" => SendResult::Sent {
            pages: control.number("pages")?.unwrap_or(to_send),
            duration,
            remote_csid: csid,
            bit_rate: control.number("bit_rate")?.unwrap_or(0),
        },
        "busy" => SendResult::BUSY,
        "no-answer" | "no_answer" => SendResult::NO_ANSWER,
        "no-fax-tone" | "no_fax_tone" => SendResult::NoFaxTone,
        "partial" => SendResult::Partial {
            pages_sent: control.number("pages")?.unwrap_or(0),
            duration,
            remote_csid: csid,
            reason: reason("the call broke off"),
        },
        "error" | "failed" => SendResult::Error {
            reason: reason("the board reported an error"),
            retry: match control.get(&["retry"]) {
                None => true,
                Some(v) => yes_no(v).ok_or_else(|| format!("retry: {v:?} is not yes or no"))?,
            },
        },
        other => return Err(format!("result: unknown value {other:?}")),
    })
}

fn yes_no(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Some(true),
        "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

/// How a received fax ended: `status` (`ok`, the default; `partial`;
/// `failed`) and `reason` in `NAME.rx`.
pub fn rx_status(control: &Control) -> Result<Reception, String> {
    let reason = |default: &str| control.get(&["reason"]).unwrap_or(default).to_owned();
    match control
        .get(&["status"])
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("ok" | "received" | "complete") => Ok(Reception::Complete),
        Some("partial") => Ok(Reception::Partial {
            reason: reason("the call broke off"),
        }),
        Some("failed" | "error") => Ok(Reception::Failed {
            reason: reason("nothing was received"),
        }),
        Some(other) => Err(format!("status: unknown value {other:?}")),
    }
}

/// `t` as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 as a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn status(text: &str) -> Result<SendResult, String> {
        status_result(&Control::parse(text)?, 3)
    }

    #[test]
    fn every_result_maps() {
        assert_eq!(
            status("result: sent\npages: 2\nduration: 41.5\ncsid: REMOTE\nbit_rate: 14400\n"),
            Ok(SendResult::Sent {
                pages: 2,
                duration: Duration::from_millis(41_500),
                remote_csid: "REMOTE".into(),
                bit_rate: 14400
            })
        );
        assert!(matches!(
            status("result: sent"),
            Ok(SendResult::Sent { pages: 3, .. })
        ));
        assert_eq!(status("Result: BUSY"), Ok(SendResult::BUSY));
        assert_eq!(status("result: no-answer"), Ok(SendResult::NO_ANSWER));
        assert_eq!(status("result: no-fax-tone"), Ok(SendResult::NoFaxTone));
        assert_eq!(
            status("result: partial\npages: 1\nduration: 20\ncsid: R\nreason: DCN"),
            Ok(SendResult::Partial {
                pages_sent: 1,
                duration: Duration::from_secs(20),
                remote_csid: "R".into(),
                reason: "DCN".into()
            })
        );
        assert_eq!(
            status("# comment\n\nresult: error\nreason: number blocked\nretry: no"),
            Ok(SendResult::Error {
                reason: "number blocked".into(),
                retry: false
            })
        );
        assert!(matches!(
            status("result: error"),
            Ok(SendResult::Error { retry: true, .. })
        ));
    }

    #[test]
    fn bad_status_files_are_errors() {
        assert!(status("").unwrap_err().contains("result"));
        assert!(status("result: maybe").unwrap_err().contains("maybe"));
        assert!(status("result: sent\npages: many")
            .unwrap_err()
            .contains("pages"));
        assert!(status("result: sent\nduration: -1")
            .unwrap_err()
            .contains("duration"));
        assert!(status("result: error\nretry: perhaps")
            .unwrap_err()
            .contains("retry"));
        assert!(status("result sent").unwrap_err().contains("line 1"));
    }

    #[test]
    fn aliases_and_rx_status() {
        let c = Control::parse("DID: 100\nani: +15550001\nStatus: partial\nreason: DCN").unwrap();
        assert_eq!(c.get(&["called", "did"]), Some("100"));
        assert_eq!(c.get(&["caller", "ani"]), Some("+15550001"));
        assert_eq!(
            rx_status(&c),
            Ok(Reception::Partial {
                reason: "DCN".into()
            })
        );
        assert_eq!(rx_status(&Control::default()), Ok(Reception::Complete));
        let failed = Control::parse("status: failed").unwrap();
        assert!(matches!(rx_status(&failed), Ok(Reception::Failed { .. })));
        assert!(rx_status(&Control::parse("status: odd").unwrap()).is_err());
    }

    #[test]
    fn job_file_is_one_value_a_line() {
        let request = SendRequest {
            job_id: "Q1/2".into(),
            dial: "+15551234567".into(),
            number: "+15551234567".into(),
            document: PathBuf::from("/x.tif"),
            first_page: 2,
            pages: 3,
            tsi: "+1 555 0100".into(),
            header: Some("ACME\nInjected: yes".into()),
            subaddress: None,
            extension: None,
            progress: None,
        };
        let t = UNIX_EPOCH + Duration::from_secs(1_763_768_415);
        let text = job_file("J1", &request, "J1.tif", t);
        let c = Control::parse(&text).unwrap();
        assert_eq!(c.get(&["number"]), Some("+15551234567"));
        assert_eq!(c.get(&["job"]), Some("Q1/2"));
        assert_eq!(c.get(&["header"]), Some("ACME Injected: yes"));
        assert_eq!(c.get(&["injected"]), None);
        assert_eq!(c.number("first_page"), Ok(Some(2)));
        assert_eq!(c.get(&["submitted"]), Some("2025-11-21T23:40:15Z"));
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00Z");
    }
}
