//! Unit tests of the jitter buffer: in order, reordered, duplicates,
//! late frames, gaps, the 16-bit wrap, a new SSRC, a sequence jump, a
//! fast far end.

use super::*;

fn frame(seq: u16) -> Vec<u8> {
    seq.to_be_bytes().to_vec()
}

/// Pops `n` ticks; frames as their sequence numbers, gaps as `None`,
/// idle ticks left out.
fn play(jb: &mut JitterBuffer, n: usize) -> Vec<Option<u16>> {
    (0..n)
        .filter_map(|_| match jb.pop() {
            Tick::Frame(f) => Some(Some(u16::from_be_bytes([f[0], f[1]]))),
            Tick::Gap => Some(None),
            Tick::Idle => None,
        })
        .collect()
}

#[test]
fn jitter_nothing_before_the_first_frame_then_depth_ticks_of_delay() {
    let mut jb = JitterBuffer::new(3);
    assert_eq!(jb.pop(), Tick::Idle);
    assert_eq!(jb.push(7, 100, frame(100)), Push::Accepted);
    // Three ticks of filling up, then the frame.
    assert_eq!(jb.pop(), Tick::Idle);
    assert_eq!(jb.pop(), Tick::Idle);
    assert_eq!(jb.pop(), Tick::Idle);
    assert_eq!(jb.pop(), Tick::Frame(frame(100)));
    // Nothing more came: a gap per tick.
    assert_eq!(jb.pop(), Tick::Gap);
    assert_eq!(jb.stats().played, 1);
    assert_eq!(jb.stats().gaps, 1);
    assert_eq!(JitterBuffer::new(0).depth(), 1);
}

#[test]
fn jitter_reorders_within_the_depth() {
    let mut jb = JitterBuffer::new(3);
    // Arrivals per tick: 10; 12 11; 14; 13 15 …: each tick one frame is
    // popped after the push(es).
    let arrivals: [&[u16]; 6] = [&[10], &[12, 11], &[14], &[13, 15], &[16], &[17]];
    let mut out = Vec::new();
    for tick in arrivals {
        for &seq in tick {
            assert_eq!(jb.push(1, seq, frame(seq)), Push::Accepted);
        }
        out.extend(play(&mut jb, 1));
    }
    out.extend(play(&mut jb, 5));
    let want: Vec<Option<u16>> = (10..=17).map(Some).collect();
    assert_eq!(out[..8], want[..]);
    assert_eq!(jb.stats().late, 0);
}

#[test]
fn jitter_early_reordering_moves_the_start_back() {
    // The second frame overtook the first before playout began.
    let mut jb = JitterBuffer::new(3);
    jb.push(1, 51, frame(51));
    jb.push(1, 50, frame(50));
    assert_eq!(play(&mut jb, 5), vec![Some(50), Some(51)]);
}

#[test]
fn jitter_drops_duplicates_and_late_frames() {
    let mut jb = JitterBuffer::new(2);
    jb.push(1, 1, frame(1));
    assert_eq!(jb.push(1, 1, frame(1)), Push::Duplicate);
    jb.push(1, 3, frame(3));
    // 1 plays, then 2 is missing: a gap.
    assert_eq!(play(&mut jb, 4), vec![Some(1), None]);
    // 2 comes after its turn; 1 again (already played) is late too.
    assert_eq!(jb.push(1, 2, frame(2)), Push::Late);
    assert_eq!(jb.push(1, 1, frame(1)), Push::Late);
    assert_eq!(play(&mut jb, 1), vec![Some(3)]);
    // Two ticks of nothing after the end: gaps, but not losses.
    assert_eq!(play(&mut jb, 2), vec![None, None]);
    let stats = jb.stats();
    assert_eq!(
        (
            stats.duplicates,
            stats.late,
            stats.gaps,
            stats.lost,
            stats.played
        ),
        (1, 2, 3, 1, 2)
    );
}

#[test]
fn jitter_sequence_numbers_wrap() {
    let mut jb = JitterBuffer::new(3);
    let seqs: Vec<u16> = (0..8u16).map(|i| 65532u16.wrapping_add(i)).collect();
    // Swap neighbours across the wrap: 65535 after 0.
    let mut order = seqs.clone();
    order.swap(3, 4);
    let mut out = Vec::new();
    for &seq in &order {
        assert_eq!(jb.push(1, seq, frame(seq)), Push::Accepted, "{seq}");
        out.extend(play(&mut jb, 1));
    }
    out.extend(play(&mut jb, 4));
    let want: Vec<Option<u16>> = seqs.iter().copied().map(Some).collect();
    assert_eq!(out[..8], want[..]);
}

#[test]
fn jitter_a_new_ssrc_restarts_the_buffer() {
    let mut jb = JitterBuffer::new(2);
    jb.push(1, 1000, frame(1000));
    jb.push(1, 1001, frame(1001));
    assert_eq!(play(&mut jb, 3), vec![Some(1000)]);
    // Another source (the far end re-INVITEd, or a B2BUA switched legs):
    // its numbers are unrelated; what the old one left is dropped.
    assert_eq!(jb.push(2, 7, frame(7)), Push::Restarted);
    assert_eq!(jb.held(), 1);
    jb.push(2, 8, frame(8));
    assert_eq!(play(&mut jb, 4), vec![Some(7), Some(8)]);
    assert_eq!(jb.stats().restarts, 1);
}

#[test]
fn jitter_a_sequence_jump_restarts_the_buffer() {
    let mut jb = JitterBuffer::new(2);
    jb.push(1, 10, frame(10));
    assert_eq!(play(&mut jb, 3), vec![Some(10)]);
    // Same SSRC, numbering far away (forward by thousands): a restart,
    // not 2 s of gaps. Backwards is late (already played).
    assert_eq!(jb.push(1, 5000, frame(5000)), Push::Restarted);
    assert_eq!(play(&mut jb, 3), vec![Some(5000)]);
    assert_eq!(jb.push(1, 20, frame(20)), Push::Late);
}

#[test]
fn jitter_a_fast_far_end_does_not_grow_the_delay() {
    // Two frames arrive per tick for a while: the delay is trimmed back,
    // the oldest frames pushed out.
    let mut jb = JitterBuffer::new(3);
    let mut seq = 0u16;
    for _ in 0..50 {
        for _ in 0..2 {
            jb.push(1, seq, frame(seq));
            seq += 1;
        }
        jb.pop();
        assert!(jb.held() <= 2 * 3 + 1, "held {}", jb.held());
    }
    let stats = jb.stats();
    assert!(stats.overflow > 0);
    assert_eq!(stats.gaps, 0);
    assert_eq!(stats.played + stats.overflow + jb.held() as u64, 100);
}
