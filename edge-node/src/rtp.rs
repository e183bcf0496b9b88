//! RTP in one place: the packet as media moves inside the edge and between
//! edges ([`MediaPacket`]), reading an RTP packet's header ([`parse`]) and
//! writing a minimal one ([`packet`]). Pure: no I/O, no clock. The SFU, the
//! relay bridge and the recorder all use these.

/// One media packet as it travels between edges (and from the SFU's taps to
/// the relay); defined with the mesh's wire format.
pub(crate) use mesh_client::MediaPacket;

/// The parts of an RTP packet the edge uses: (payload type, marker,
/// sequence, timestamp, payload), skipping CSRCs, a header extension and
/// padding. None for anything that is not RTP version 2 or is cut short.
pub(crate) fn parse(p: &[u8]) -> Option<(u8, bool, u16, u32, &[u8])> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    let pt = p[1] & 0x7f;
    let marker = p[1] & 0x80 != 0;
    let seq = u16::from_be_bytes([p[2], p[3]]);
    let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
    let mut at = 12 + 4 * (p[0] & 0x0f) as usize;
    if p[0] & 0x10 != 0 {
        let ext = p.get(at + 2..at + 4)?;
        at += 4 + 4 * u16::from_be_bytes([ext[0], ext[1]]) as usize;
    }
    let mut end = p.len();
    if p[0] & 0x20 != 0 {
        end = end.checked_sub(*p.last()? as usize)?;
    }
    Some((pt, marker, seq, ts, p.get(at..end)?))
}

/// A 12-byte RTP header (version 2, no CSRC, no extensions) and `payload`.
pub(crate) fn packet(
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) -> Vec<u8> {
    let mut p = Vec::with_capacity(12 + payload.len());
    p.push(0x80);
    p.push((pt & 0x7f) | if marker { 0x80 } else { 0 });
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_minimal_header() {
        let p = packet(96, true, 0x1234, 0xdead_beef, 7, &[1, 2]);
        assert_eq!(
            p,
            vec![
                0x80, 0xe0, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 7, 1, 2
            ]
        );
    }

    #[test]
    fn reads_back_what_it_writes_and_skips_extensions_and_padding() {
        let p = packet(111, false, 9, 48_000, 3, &[5, 6, 7]);
        assert_eq!(parse(&p), Some((111, false, 9, 48_000, &[5u8, 6, 7][..])));
        // one CSRC, a one-word extension, two bytes of padding
        let mut q = vec![0x80 | 0x10 | 0x20 | 0x01, 96, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3];
        q.extend_from_slice(&[0, 0, 0, 4]); // CSRC
        q.extend_from_slice(&[0xbe, 0xde, 0, 1, 9, 9, 9, 9]); // extension
        q.extend_from_slice(&[42, 43]); // payload
        q.extend_from_slice(&[0, 2]); // padding, its length last
        assert_eq!(parse(&q), Some((96, false, 1, 2, &[42u8, 43][..])));
        assert_eq!(parse(&[0x40; 20]), None, "RTP version 1");
        assert_eq!(parse(&q[..10]), None, "cut short");
    }
}
