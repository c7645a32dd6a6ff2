//! The board's own rules: entries, order of changes, the end kept for a
//! while, then gone.

use super::*;

fn start(job_id: &str) -> LiveProgress {
    LiveProgress {
        state: LiveState::Rendering,
        pages_total: 3,
        attempt: 1,
        engine: "simulated".into(),
        ..LiveProgress::queued(job_id, "+4930123456")
    }
}

#[test]
fn live_changes_come_in_order_and_describe_themselves() {
    let board = LiveBoard::default();
    let mut changes = board.changes();
    let sink = board.open(start("Q1/0"), &[]);
    sink.state(LiveState::Dialling);
    sink.sending(1);
    sink.sending(1); // no change, not announced
    sink.sending(2);
    sink.end(LiveState::Sent, 3, "");
    let mut seen = Vec::new();
    while let Ok(p) = changes.try_recv() {
        seen.push(p.describe());
    }
    assert_eq!(
        seen,
        [
            "rendering the pages",
            "dialling +4930123456",
            "sending page 1 of 3 to +4930123456",
            "sending page 2 of 3 to +4930123456",
            "sent 3 of 3 pages to +4930123456",
        ]
    );
    assert_eq!(board.version(), 5);
    assert!(sink.ended());
    assert_eq!(board.get("Q1/0").map(|p| p.state), Some(LiveState::Sent));
}

#[test]
fn live_entries_of_one_call_move_together() {
    let board = LiveBoard::default();
    let sink = board.open(start("Q2/0"), &["Q2/3".into()]);
    board.open(start("Q20/0"), &[]);
    sink.end(LiveState::Failed, 0, "the line was busy");
    let of = board.of_message("Q2");
    assert_eq!(of.len(), 2, "{of:?}");
    assert!(of
        .iter()
        .all(|p| p.describe() == "failed: the line was busy"));
    assert_eq!(board.list().len(), 3);
}

#[test]
fn live_ended_entries_go_after_keep() {
    let board = LiveBoard::new(Duration::ZERO);
    let sink = board.open(start("Q3/0"), &[]);
    assert_eq!(board.list().len(), 1, "in flight: kept");
    sink.end(LiveState::Deferred, 1, "broke off");
    assert!(board.list().is_empty(), "ended, keep 0: gone");
}

#[tokio::test]
async fn live_subscribers_wake_on_a_change() {
    let board = LiveBoard::default();
    let mut version = board.subscribe();
    let sink = board.open(start("Q4/0"), &[]);
    let other = tokio::spawn(async move { version.changed().await.map(|_| *version.borrow()) });
    sink.state(LiveState::WaitingForLine);
    let v = other.await.unwrap().unwrap();
    assert!(v >= 1);
}
