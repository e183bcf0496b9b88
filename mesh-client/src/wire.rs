//! The payload of one MoQ object: one RTP packet's media payload behind a
//! small fixed header carrying what the receiving edge needs to rebuild RTP
//! (the RTP header itself is not sent: SSRCs, extensions and padding are
//! per-hop and the receiving SFU writes its own).
//!
//! ```text
//!  0               1               2               3
//!  0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7 0 1 2 3 4 5 6 7
//! +---------------+-+-+-----------+-+-------------+---------------+
//! |  version = 1  |M|K|  reserved |0| payload type|  sequence ... |
//! +---------------+-+-+-----------+-+-------------+---------------+
//! | ... sequence  |            RTP timestamp (u32, big endian) ...
//! +---------------+-----------------------------------------------+
//! | ... timestamp |  RTP payload ...
//! +---------------+------------------------------------------------
//! ```
//!
//! * version: 1. A receiver refuses other versions instead of guessing.
//! * flags: M (0x80) = RTP marker bit, K (0x40) = this packet starts a
//!   keyframe (the publisher starts a new MoQ group at it); the low six bits
//!   are reserved, sent as 0 and ignored on receipt.
//! * payload type: the RTP payload type (7 bits; the top bit must be 0).
//! * sequence: the RTP sequence number (u16, big endian).
//! * timestamp: the RTP timestamp (u32, big endian).
//!
//! Nine bytes of header; everything after it is the RTP payload.

use bytes::{BufMut, Bytes, BytesMut};

pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 9;

const FLAG_MARKER: u8 = 0x80;
const FLAG_KEYFRAME: u8 = 0x40;

/// One media packet as it travels between edges: the RTP fields a
/// receiver needs to rebuild its own header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaPacket {
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    /// The RTP marker bit (end of a video frame).
    pub marker: bool,
    /// This packet begins a keyframe. Only the first packet of the frame
    /// carries it: a new group starts here.
    pub keyframe: bool,
    pub payload: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("object shorter than the {HEADER_LEN}-byte media header ({0} bytes)")]
    TooShort(usize),
    #[error("unknown media header version {0}")]
    UnknownVersion(u8),
    #[error("payload type {0} does not fit in 7 bits")]
    BadPayloadType(u8),
}

/// The object payload for `packet`.
pub fn encode(packet: &MediaPacket) -> Result<Bytes, WireError> {
    if packet.payload_type > 0x7f {
        return Err(WireError::BadPayloadType(packet.payload_type));
    }
    let mut flags = 0;
    if packet.marker {
        flags |= FLAG_MARKER;
    }
    if packet.keyframe {
        flags |= FLAG_KEYFRAME;
    }
    let mut buf = BytesMut::with_capacity(HEADER_LEN + packet.payload.len());
    buf.put_u8(VERSION);
    buf.put_u8(flags);
    buf.put_u8(packet.payload_type);
    buf.put_u16(packet.sequence);
    buf.put_u32(packet.timestamp);
    buf.put_slice(&packet.payload);
    Ok(buf.freeze())
}

/// The packet in an object payload. The media payload is a zero-copy slice.
pub fn decode(object: &Bytes) -> Result<MediaPacket, WireError> {
    if object.len() < HEADER_LEN {
        return Err(WireError::TooShort(object.len()));
    }
    if object[0] != VERSION {
        return Err(WireError::UnknownVersion(object[0]));
    }
    let flags = object[1];
    let payload_type = object[2];
    if payload_type > 0x7f {
        return Err(WireError::BadPayloadType(payload_type));
    }
    Ok(MediaPacket {
        payload_type,
        sequence: u16::from_be_bytes([object[3], object[4]]),
        timestamp: u32::from_be_bytes([object[5], object[6], object[7], object[8]]),
        marker: flags & FLAG_MARKER != 0,
        keyframe: flags & FLAG_KEYFRAME != 0,
        payload: object.slice(HEADER_LEN..),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(marker: bool, keyframe: bool, payload: &'static [u8]) -> MediaPacket {
        MediaPacket {
            payload_type: 96,
            sequence: 0xbeef,
            timestamp: 0x0102_0304,
            marker,
            keyframe,
            payload: Bytes::from_static(payload),
        }
    }

    fn hex(b: &[u8]) -> String {
        b.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// encode → bytes → decode, checking the exact bytes on the wire.
    fn check(p: MediaPacket, wire: &str) {
        let bytes = encode(&p).expect("encode");
        assert_eq!(hex(&bytes), wire);
        assert_eq!(decode(&bytes).expect("decode"), p);
    }

    #[test]
    fn header_layout() {
        check(packet(false, false, b""), "01 00 60 be ef 01 02 03 04");
        check(
            packet(true, false, b"\xaa"),
            "01 80 60 be ef 01 02 03 04 aa",
        );
        check(
            packet(false, true, b"\xaa\xbb"),
            "01 40 60 be ef 01 02 03 04 aa bb",
        );
        check(packet(true, true, b""), "01 c0 60 be ef 01 02 03 04");
        check(
            MediaPacket {
                payload_type: 111,
                sequence: 0,
                timestamp: u32::MAX,
                ..packet(false, false, b"opus")
            },
            "01 00 6f 00 00 ff ff ff ff 6f 70 75 73",
        );
    }

    #[test]
    fn reserved_flag_bits_are_ignored() {
        let bytes = Bytes::from_static(b"\x01\x3f\x60\x00\x01\x00\x00\x00\x02x");
        let p = decode(&bytes).expect("decode");
        assert!(!p.marker && !p.keyframe);
        assert_eq!(p.payload, Bytes::from_static(b"x"));
    }

    #[test]
    fn malformed_objects_are_refused() {
        assert_eq!(
            decode(&Bytes::from_static(b"")),
            Err(WireError::TooShort(0))
        );
        assert_eq!(
            decode(&Bytes::from_static(b"\x01\x00\x60\x00\x01\x00\x00\x00")),
            Err(WireError::TooShort(8))
        );
        assert_eq!(
            decode(&Bytes::from_static(b"\x02\x00\x60\x00\x01\x00\x00\x00\x02")),
            Err(WireError::UnknownVersion(2))
        );
        assert_eq!(
            decode(&Bytes::from_static(b"\x01\x00\xe0\x00\x01\x00\x00\x00\x02")),
            Err(WireError::BadPayloadType(0xe0))
        );
        let mut p = packet(false, false, b"");
        p.payload_type = 200;
        assert_eq!(encode(&p), Err(WireError::BadPayloadType(200)));
    }
}
