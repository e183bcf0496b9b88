//! What the forwarding core needs to know about a codec's RTP payload:
//! whether a packet starts a keyframe, and VP8 picture ids.

use str0m::format::Codec;
use str0m::rtp::Vp8Descriptor;

/// H.264 sequence parameter set: browsers send it just before an IDR, and a
/// decoder needs it, so forwarding after a switch starts there.
const SPS_NALU: u8 = 7;
const IDR_NALU: u8 = 5;
const STAP_A: u8 = 24;
const FU_A: u8 = 28;

pub(crate) fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => Vp8Descriptor::parse(payload).is_ok_and(|d| d.starts_keyframe(payload)),
        Codec::H264 => h264_nalus(payload).any(|t| t == SPS_NALU || t == IDR_NALU),
        Codec::Opus => true,
        _ => false,
    }
}

/// The NAL unit types an H.264 RTP payload starts (RFC 6184): a single NAL
/// unit, each unit of a STAP-A, or the first fragment of an FU-A.
fn h264_nalus(payload: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut types = Vec::new();
    if let Some(&first) = payload.first() {
        match first & 0x1f {
            STAP_A => {
                let mut i = 1;
                while i + 2 < payload.len() {
                    let len = u16::from_be_bytes([payload[i], payload[i + 1]]) as usize;
                    if let Some(&h) = payload.get(i + 2) {
                        types.push(h & 0x1f);
                    }
                    i += 2 + len;
                }
            }
            FU_A => {
                if let Some(&fu) = payload.get(1)
                    && fu & 0x80 != 0
                {
                    types.push(fu & 0x1f);
                }
            }
            t => types.push(t),
        }
    }
    types.into_iter()
}

pub(crate) fn vp8_picture_id(codec: Codec, payload: &[u8]) -> Option<u16> {
    match codec {
        Codec::Vp8 => Vp8Descriptor::parse(payload)
            .ok()
            .and_then(|d| d.picture_id()),
        _ => None,
    }
}

/// Rank of a simulcast rid: browsers name layers `q`/`h`/`f` (quarter, half,
/// full) or `l`/`m`/`h`; anything else keeps offer order.
pub(crate) fn rid_rank(rid: &str, position: usize) -> usize {
    match rid {
        "q" | "l" | "low" | "lo" | "0" => 0,
        "m" | "mid" | "1" => 1,
        "h" => 1,
        "f" | "hi" | "high" | "full" | "2" => 2,
        _ => position,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vp8_keyframes_and_picture_ids() {
        // X=1 S=1 PID=0 | I=1 | 15-bit picture id 0x1234 | payload header P=0 (key)
        let key = [0x90, 0x80, 0x80 | 0x12, 0x34, 0x10, 0, 0];
        assert!(starts_keyframe(Codec::Vp8, &key));
        assert_eq!(vp8_picture_id(Codec::Vp8, &key), Some(0x1234));
        // same with P=1 (delta frame)
        let delta = [0x90, 0x80, 0x80 | 0x12, 0x35, 0x11, 0, 0];
        assert!(!starts_keyframe(Codec::Vp8, &delta));
        // a continuation packet (S=0) is never a keyframe start
        let cont = [0x80, 0x80, 0x80 | 0x12, 0x34, 0x10];
        assert!(!starts_keyframe(Codec::Vp8, &cont));
        assert!(!starts_keyframe(Codec::Vp8, &[]));
    }

    #[test]
    fn h264_starts_at_the_parameter_sets() {
        // STAP-A carrying SPS (7) and PPS (8)
        let stap = [24u8, 0, 2, 0x67, 0x42, 0, 2, 0x68, 0xce];
        assert!(starts_keyframe(Codec::H264, &stap));
        // a lone non-IDR slice
        assert!(!starts_keyframe(Codec::H264, &[0x41, 0x9a]));
        // an IDR slice
        assert!(starts_keyframe(Codec::H264, &[0x65, 0x88]));
    }

    #[test]
    fn rid_ranks() {
        assert!(rid_rank("q", 2) < rid_rank("h", 0));
        assert!(rid_rank("h", 0) < rid_rank("f", 0));
        assert_eq!(rid_rank("x", 1), 1);
    }
}
