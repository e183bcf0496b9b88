//! Puts a track's objects back in order. Each MoQ group arrives on its own
//! QUIC stream, so objects of consecutive groups interleave (and a relay may
//! deliver group N+1's first object before group N's last). Within a group,
//! objects arrive in order. This buffer releases the oldest open group's
//! objects as they come and holds newer groups until it ends.
//!
//! It never waits forever: when a newer group has already *ended* while an
//! older one is still open, the publisher has moved on twice and the old
//! group is stuck (loss, a reset stream); it is skipped and the next object
//! out carries `discontinuity` (the SFU asks its sender for a keyframe).
//! Objects of groups older than the one being released are dropped.
//!
//! Sans-IO: [`Reorder::push`] and [`Reorder::end`] in, [`Reorder::pop`] out.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

/// Objects held for newer groups before the oldest open one is given up.
const MAX_BUFFERED: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Released {
    pub(crate) group: u64,
    pub(crate) object: u64,
    pub(crate) payload: Bytes,
    /// Objects were skipped just before this one.
    pub(crate) discontinuity: bool,
}

#[derive(Default)]
struct Held {
    objects: VecDeque<(u64, Bytes)>,
    ended: bool,
}

#[derive(Default)]
pub(crate) struct Reorder {
    /// The group being released, and whether it has ended.
    current: Option<(u64, bool)>,
    held: BTreeMap<u64, Held>,
    buffered: usize,
    ready: VecDeque<Released>,
    gap: bool,
    dropped: u64,
}

impl Reorder {
    pub(crate) fn push(&mut self, group: u64, object: u64, payload: Bytes) {
        match self.current {
            None => {
                self.current = Some((group, false));
                self.release(group, object, payload);
            }
            Some((current, false)) if group == current => self.release(group, object, payload),
            Some((current, true)) if group > current && self.held.is_empty() => {
                self.current = Some((group, false));
                self.release(group, object, payload);
            }
            Some((current, _)) if group > current => {
                self.held
                    .entry(group)
                    .or_default()
                    .objects
                    .push_back((object, payload));
                self.buffered += 1;
                if self.buffered > MAX_BUFFERED {
                    self.skip();
                }
            }
            // Older than what we release, or a straggler after its group ended.
            Some(_) => self.dropped += 1,
        }
    }

    pub(crate) fn end(&mut self, group: u64) {
        match self.current {
            Some((current, false)) if group == current => {
                self.current = Some((current, true));
                self.advance();
            }
            Some((current, _)) if group > current => {
                self.held.entry(group).or_default().ended = true;
                if matches!(self.current, Some((_, false))) {
                    // A newer group is complete while ours is still open.
                    self.skip();
                }
            }
            // The group we release ended already, or an older one: nothing to do.
            Some(_) | None => {}
        }
    }

    /// The track ended: release whatever is still held, oldest group first.
    pub(crate) fn finish(&mut self) {
        if let Some((current, _)) = self.current {
            self.current = Some((current, true));
        }
        self.advance();
        while let Some((group, held)) = self.held.pop_first() {
            self.buffered -= held.objects.len();
            self.current = Some((group, true));
            for (object, payload) in held.objects {
                self.release(group, object, payload);
            }
        }
    }

    pub(crate) fn pop(&mut self) -> Option<Released> {
        self.ready.pop_front()
    }

    /// Objects dropped as stale so far.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    fn release(&mut self, group: u64, object: u64, payload: Bytes) {
        let discontinuity = std::mem::take(&mut self.gap);
        self.ready.push_back(Released {
            group,
            object,
            payload,
            discontinuity,
        });
    }

    /// Gives up on the current group and moves to the next held one.
    fn skip(&mut self) {
        if let Some((current, _)) = self.current {
            self.current = Some((current, true));
            self.gap = true;
        }
        self.advance();
    }

    /// While the current group has ended, release the next held group.
    fn advance(&mut self) {
        while let Some((_, true)) = self.current {
            let Some((group, held)) = self.held.pop_first() else {
                return;
            };
            self.buffered -= held.objects.len();
            self.current = Some((group, held.ended));
            for (object, payload) in held.objects {
                self.release(group, object, payload);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fmt::Write;

    use super::*;

    /// Script: `gG oO` pushes object O of group G; `end gG` ends group G.
    /// Output: what is released after each line (`!` marks a discontinuity).
    fn check(script: &str, expect: &str) {
        let mut r = Reorder::default();
        let mut out = String::new();
        for line in script.split(',').map(str::trim).filter(|l| !l.is_empty()) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let num = |w: &str| w[1..].parse::<u64>().expect("number");
            match words.as_slice() {
                ["end", g] => r.end(num(g)),
                [g, o] => r.push(num(g), num(o), Bytes::new()),
                other => panic!("bad line {other:?}"),
            }
            while let Some(x) = r.pop() {
                let bang = if x.discontinuity { "!" } else { "" };
                let _ = write!(out, "{bang}g{}o{} ", x.group, x.object);
            }
        }
        let _ = write!(out, "dropped={}", r.dropped());
        assert_eq!(out, expect, "script: {script}");
    }

    #[test]
    fn in_order_input_passes_straight_through() {
        check(
            "g0 o0, g0 o1, end g0, g1 o0, g1 o1",
            "g0o0 g0o1 g1o0 g1o1 dropped=0",
        );
    }

    #[test]
    fn a_newer_group_waits_for_the_older_one() {
        check(
            "g0 o0, g1 o0, g1 o1, g0 o1, end g0, g1 o2",
            "g0o0 g0o1 g1o0 g1o1 g1o2 dropped=0",
        );
        // the newer group ended before the older one: held until it ends
        check(
            "g0 o0, g1 o0, g0 o1, end g0, end g1, g2 o0",
            "g0o0 g0o1 g1o0 g2o0 dropped=0",
        );
    }

    #[test]
    fn a_stuck_group_is_skipped_when_a_newer_one_is_complete() {
        check(
            "g0 o0, g1 o0, end g1, g2 o0, g0 o1",
            "g0o0 !g1o0 g2o0 dropped=1",
        );
    }

    #[test]
    fn older_groups_and_stragglers_are_dropped() {
        // first object decides where we start; g3 is older
        check("g4 o0, g3 o0, end g3, g4 o1", "g4o0 g4o1 dropped=1");
        // an object after its group ended
        check("g0 o0, end g0, g0 o1, g1 o0", "g0o0 g1o0 dropped=1");
    }

    #[test]
    fn finishing_releases_what_is_held() {
        let mut r = Reorder::default();
        r.push(0, 0, Bytes::new());
        r.push(1, 0, Bytes::new());
        r.push(2, 0, Bytes::new());
        r.finish();
        let out: Vec<(u64, u64)> = std::iter::from_fn(|| r.pop())
            .map(|x| (x.group, x.object))
            .collect();
        assert_eq!(out, [(0, 0), (1, 0), (2, 0)]);
    }

    #[test]
    fn an_end_before_any_object_is_harmless() {
        check("end g5, g0 o0, g0 o1", "g0o0 g0o1 dropped=0");
    }

    #[test]
    fn too_much_held_data_skips_the_current_group() {
        let mut script = String::from("g0 o0,");
        for o in 0..=MAX_BUFFERED {
            script.push_str(&format!("g1 o{o},"));
        }
        let mut r = Reorder::default();
        for line in script.split(',').filter(|l| !l.is_empty()) {
            let w: Vec<u64> = line
                .split_whitespace()
                .map(|w| w[1..].parse().expect("n"))
                .collect();
            r.push(w[0], w[1], Bytes::new());
        }
        let first = r.pop().expect("g0o0");
        assert_eq!(
            (first.group, first.object, first.discontinuity),
            (0, 0, false)
        );
        let next = r.pop().expect("g1o0");
        assert_eq!((next.group, next.object, next.discontinuity), (1, 0, true));
    }
}
