mod tiff_f;
use faxmta_transports::fax::engine::spandsp::modem::*;
use std::ffi::CStr;

#[test]
fn engine_explore() {
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("doc.tif");
    let pages: Vec<_> = (1..=3).map(tiff_f::text_page).collect();
    tiff_f::write_tiff_f(&doc, &pages);
    let size = std::fs::metadata(&doc).unwrap().len();
    eprintln!("doc size {size}");
    for (first, last, hang) in [(1, 3, None), (2, 3, None), (1, 3, Some(1u32))] {
        let rx = dir.path().join(format!("rx{first}{hang:?}.tif"));
        let t = std::time::Instant::now();
        let mut caller = Terminal::new(&Setup { calling: true, ident: "+1 555 0100", tag: c"tx", job: Job::Send { file: &doc, first, last, header: None } }).unwrap();
        let mut answer = Terminal::new(&Setup { calling: false, ident: "REMOTE 42", tag: c"rx", job: Job::Receive { file: &rx } }).unwrap();
        let r = run_call(&mut caller, FarEnd::Machine { terminal: &mut answer, hang_up_after: hang }, 2000);
        eprintln!("{first}-{last} hang {hang:?}: {r:?} {:?} wall {:?}", r.duration(), t.elapsed());
        eprintln!(" caller {:?} {:?} remote ident {:?} code {:?}", caller.stats(), caller.completion(), caller.remote_ident(), caller.completion().map(completion_text));
        eprintln!(" answer {:?} {:?} remote ident {:?} phase_d {}", answer.stats(), answer.completion(), answer.remote_ident(), answer.phase_d_count());
        drop(answer); drop(caller);
        let got = tiff_f::read_tiff_f(&rx);
        eprintln!(" rx pages {} desc {:?}", got.len(), got.first().map(|p| p.description.clone()));
        for (i, p) in got.iter().enumerate() {
            let want = &pages[first as usize - 1 + i];
            eprintln!("  page {i}: {:?} eq {}", p.page, p.page == *want);
        }
    }
    for (file, first, last, header) in [(doc.clone(), 1, 1, Some("ACME Corp +1 555 0100")), (dir.path().join("missing.tif"), 1, 3, None), (doc.clone(), 4, 5, None)] {
        let rx = dir.path().join(format!("h{first}.tif"));
        let t = std::time::Instant::now();
        let mut caller = Terminal::new(&Setup { calling: true, ident: "+1 555 0100", tag: c"tx", job: Job::Send { file: &file, first, last, header } }).unwrap();
        let mut answer = Terminal::new(&Setup { calling: false, ident: "REMOTE 42", tag: c"rx", job: Job::Receive { file: &rx } }).unwrap();
        let r = run_call(&mut caller, FarEnd::Machine { terminal: &mut answer, hang_up_after: None }, 2000);
        eprintln!("{file:?} {first}-{last} {header:?}: {r:?} {:?} wall {:?}", r.duration(), t.elapsed());
        eprintln!(" caller {:?} {:?} remote ident {:?} code {:?}", caller.stats(), caller.completion(), caller.remote_ident(), caller.completion().map(completion_text));
        eprintln!(" answer {:?} {:?} remote ident {:?} phase_d {} code {:?}", answer.stats(), answer.completion(), answer.remote_ident(), answer.phase_d_count(), answer.completion().map(completion_text));
        drop(answer); drop(caller);
        if rx.exists() {
            let got = tiff_f::read_tiff_f(&rx);
            for p in &got { 
                let h = p.page.height.min(2200);
                let first_diff = (0..h).find(|&y| p.page.row(y) != pages[0].row(y));
                let last_diff = (0..h).rev().find(|&y| p.page.row(y) != pages[0].row(y));
                let extra = p.page.height.saturating_sub(2200);
                let shifted = (0..2200).all(|y| y + extra < p.page.height && p.page.row(y + extra) == pages[0].row(y));
                eprintln!("  black in top 64 rows: {} shifted-equal {shifted}", p.page.black_in(0, 64));
                eprintln!("  page {:?} diff rows {first_diff:?}..{last_diff:?}", p.page);
            }
        } else { eprintln!("  no rx file"); }
    }
    let t = std::time::Instant::now();
    let mut caller = Terminal::new(&Setup { calling: true, ident: "+1 555 0100", tag: c"tx", job: Job::Send { file: &doc, first: 1, last: 3, header: None } }).unwrap();
    let r = run_call(&mut caller, FarEnd::Silence, 2000);
    eprintln!("silence: {r:?} {:?} wall {:?} code {:?}", r.duration(), t.elapsed(), caller.completion().map(completion_text));
    let _ = CStr::from_bytes_with_nul(b"\0");
}
