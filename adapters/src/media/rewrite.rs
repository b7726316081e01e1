//! Sequence numbers and RTP timestamps as one outgoing stream sees them.
//!
//! The relay writes each forwarded packet onto the receiving leg's own stream (its own SSRC,
//! its own payload type), so the receiver sees one continuous stream per track even when the
//! sending party reconnects and its packets start again from another random sequence number
//! and timestamp. str0m's SRTP assumes a fresh stream starts with a rollover counter of 0, so
//! the outgoing numbering starts low and only ever continues.

/// Rebases one source's extended sequence numbers and timestamps onto one outgoing stream.
#[derive(Debug, Default)]
pub(crate) struct Rebase {
    /// The source leg the offsets belong to; a new source starts a new segment.
    source: Option<u64>,
    last_in: u64,
    last_out: u64,
    ts_offset: u32,
    last_ts_out: u32,
}

/// A jump larger than this is a restart of the source, not loss.
const MAX_GAP: u64 = 3_000;

impl Rebase {
    /// The outgoing sequence number and timestamp for an incoming packet of `source`, or
    /// `None` for a packet too old to place (a late duplicate across a restart).
    ///
    /// `ts_step` is how far the timestamp advances across a source change (one frame).
    pub(crate) fn map(
        &mut self,
        source: u64,
        seq_in: u64,
        ts_in: u32,
        ts_step: u32,
    ) -> Option<(u64, u32)> {
        let continuing = self.source == Some(source);
        if continuing && seq_in <= self.last_in {
            // Reordered or retransmitted: keep its place relative to the segment.
            let back = self.last_in - seq_in;
            if back >= self.last_out || back > MAX_GAP {
                return None;
            }
            return Some((self.last_out - back, ts_in.wrapping_add(self.ts_offset)));
        }
        if continuing && seq_in - self.last_in <= MAX_GAP {
            // Keep gaps: they are losses the receiver may NACK.
            self.last_out += seq_in - self.last_in;
        } else {
            // First packet, a new source, or a restart: continue right after the last one.
            self.source = Some(source);
            self.last_out += 1;
            let ts_next = self.last_ts_out.wrapping_add(ts_step);
            self.ts_offset = ts_next.wrapping_sub(ts_in);
        }
        self.last_in = seq_in;
        self.last_ts_out = ts_in.wrapping_add(self.ts_offset);
        Some((self.last_out, self.last_ts_out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_starts_at_one_and_keeps_its_gaps() {
        let mut r = Rebase::default();
        assert_eq!(r.map(1, 40_000, 1_000, 3_000), Some((1, 3_000)));
        assert_eq!(r.map(1, 40_001, 4_000, 3_000), Some((2, 6_000)));
        // Two lost packets stay a gap of two.
        assert_eq!(r.map(1, 40_004, 7_000, 3_000), Some((5, 9_000)));
        // A late one falls back into its place.
        assert_eq!(r.map(1, 40_002, 4_000, 3_000), Some((3, 6_000)));
    }

    #[test]
    fn a_reconnected_source_continues_the_stream() {
        let mut r = Rebase::default();
        assert_eq!(r.map(1, 10, 100, 960), Some((1, 960)));
        assert_eq!(r.map(1, 11, 1_060, 960), Some((2, 1_920)));
        // The new leg starts anywhere; the receiver sees the next number and one frame later.
        assert_eq!(r.map(2, 60_000, 5, 960), Some((3, 2_880)));
        assert_eq!(r.map(2, 60_001, 965, 960), Some((4, 3_840)));
    }

    #[test]
    fn a_huge_jump_is_a_restart_and_stale_packets_are_dropped() {
        let mut r = Rebase::default();
        r.map(1, 5, 0, 3_000);
        assert_eq!(r.map(1, 500_000, 0, 3_000).map(|(s, _)| s), Some(2));
        assert_eq!(r.map(1, 5, 0, 3_000), None);
    }
}
