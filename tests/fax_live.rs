//! Faxes in flight with the real binary: the simulated line paced to the
//! clock (`[fax.simulated] pace`), a 3-page fax sent with `faxmta fax
//! send` is seen on the line page by page in `faxmta fax status` (the
//! live board through the control socket), then its end; the HTTP API's
//! status call adds the live state to a fax in flight.

mod common;
use common::*;

#[path = "fax_api/client.rs"]
#[allow(dead_code)]
mod client;

#[path = "../transports/fax/tests/fixtures/fax/messages.rs"]
#[allow(dead_code)]
mod fixtures;

const NUMBER: &str = "+15551234567";

fn config(work: &std::path::Path) -> String {
    let w = work.display();
    format!(
        r#"
[[domain]]
name = "fax.localhost"
kind = "fax"
[fax]
senders = "any"
lines = 1
tsi = "+1 555 0100"
spool = "{w}/spool"
[fax.simulated]
received = "{w}/remote"
inbound = "{w}/inbound"
# Five times real time: a page is on the line for about 3 s.
pace = 5
[fax.dialplan]
country_code = "1"
national_prefix = "1"
international_prefix = "011"
area_code = "555"
national_digits = 10
[[fax.user]]
address = "alice@example.test"
name = "Alice Example"
"#
    )
}

/// The page numbers `sending page N of M to …` in a status listing, with M.
fn pages_on_the_line(status: &str) -> Vec<(u32, u32)> {
    status
        .lines()
        .filter_map(|line| {
            let rest = line.split("sending page ").nth(1)?;
            let (n, rest) = rest.split_once(" of ")?;
            let (m, _) = rest.split_once(' ')?;
            Some((n.parse().ok()?, m.parse().ok()?))
        })
        .collect()
}

#[test]
fn fax_status_shows_the_page_on_the_line_then_the_end() {
    let work = tempfile::tempdir().unwrap();
    let s = Server::start_with("", &config(work.path()));
    let pdf = work.path().join("two.pdf");
    let page = (612, 792, fixtures::PDF_PAGE);
    // The cover page and two PDF pages.
    std::fs::write(&pdf, fixtures::pdf(&[page, page])).unwrap();
    let out = cli_ok(
        &s,
        &[
            "fax",
            "send",
            "--to",
            NUMBER,
            "--from",
            "alice@example.test",
            pdf.to_str().unwrap(),
        ],
    );
    let id = out.split(':').next().unwrap_or("").trim().to_string();
    assert_contains(&out, "queued");

    // While it is on the line: every page in turn, in order.
    let mut seen: Vec<u32> = Vec::new();
    let mut last = String::new();
    let ended = wait_until(180, || {
        last = cli_ok(&s, &["fax", "status", &id]);
        for (n, m) in pages_on_the_line(&last) {
            assert_eq!(m, 3, "three pages:\n{last}");
            if seen.last() != Some(&n) {
                seen.push(n);
            }
        }
        last.contains(&format!("sent 3 of 3 pages to {NUMBER}"))
    });
    assert!(ended, "the fax did not end as sent:\n{last}");
    assert_eq!(seen, [1, 2, 3], "pages seen on the line");
    assert_contains(&last, &format!("{id}/0"));

    // The end stays on the board after the history has it.
    let done = wait_until(30, || {
        last = cli_ok(&s, &["fax", "status", &id]);
        last.split("Finished faxes:")
            .nth(1)
            .is_some_and(|f| f.contains("3/3"))
    });
    assert!(done, "not in the history:\n{last}");
    assert_contains(&last, &format!("sent 3 of 3 pages to {NUMBER}"));
    assert!(pages_on_the_line(&last).is_empty(), "{last}");
}

#[test]
fn the_status_call_adds_the_live_state_of_a_fax_in_flight() {
    let work = tempfile::tempdir().unwrap();
    let paced = client::fax_config(work.path()).replace(
        "[fax.simulated]\n",
        "[fax.simulated]\n# Five times real time.\npace = 5\n",
    );
    let s = client::start(&paced, "");
    let token = client::new_token(&s, &["scanner"]);
    let page = (612, 792, fixtures::PDF_PAGE);
    let pdf = client::write(work.path(), "memo.pdf", &fixtures::pdf(&[page, page]));
    let meta = client::write(
        work.path(),
        "job.xml",
        client::job("alice@example.test", &[NUMBER], &["memo.pdf"]).as_bytes(),
    );
    let (code, body) = client::post(&client::http(&s), &token, &meta, &[&pdf], &[]);
    assert_eq!(code, 200, "{body}");
    let id = client::transaction_ids(&client::success_info(&body))[0].clone();
    let auth = format!("XM-Token-Authorization: {token}");
    let status = |xml: bool| {
        let mut args = vec!["-H", auth.as_str()];
        if xml {
            args.extend(["-H", "Accept: application/xml"]);
        }
        let (code, body) = client::curl(&s, &format!("/restservice/status/{id}"), &args);
        assert_eq!(code, 200, "{body}");
        body
    };

    // On the line: the queue's state as before, and the live fields.
    let mut fax = serde_json::Value::Null;
    let on_line = wait_until(120, || {
        fax = client::success_info(&status(false))["faxes"][0].clone();
        fax["liveState"] == "sending"
    });
    assert!(on_line, "never seen sending: {fax}");
    assert_eq!(fax["state"], "queued", "{fax}");
    let text = fax["liveText"].as_str().unwrap_or_default().to_owned();
    let page = fax["livePage"].as_u64().unwrap_or(0);
    assert!((1..=3).contains(&page), "{fax}");
    assert_eq!(
        text,
        format!("sending page {page} of 3 to {NUMBER}"),
        "{fax}"
    );
    assert!(
        fax["liveSince"].as_u64().unwrap_or(0) > 1_700_000_000,
        "{fax}"
    );
    // In XML, as attributes of the same element.
    let mut xml_fax = client::Element::default();
    let in_xml = wait_until(60, || {
        let root = client::xml(&status(true));
        xml_fax = root
            .child("successInfo")
            .child("faxes")
            .child("fax")
            .clone();
        xml_fax
            .attrs
            .iter()
            .any(|(k, v)| k == "liveState" && v == "sending")
    });
    assert!(in_xml, "{xml_fax:?}");
    assert_contains(xml_fax.attr("liveText"), "of 3 to");

    // Done: from the history, without live fields.
    let mut last = serde_json::Value::Null;
    let done = wait_until(120, || {
        last = client::success_info(&status(false))["faxes"][0].clone();
        last["state"] == "sent"
    });
    assert!(done, "{last}");
    let done_at_last = wait_until(30, || {
        last = client::success_info(&status(false))["faxes"][0].clone();
        last.get("liveState").is_none()
    });
    assert!(done_at_last, "{last}");
    assert_eq!(last["pagesSent"], 3, "{last}");
}
