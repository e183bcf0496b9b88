//! Pictures the composer needs that no camera sends: the whiteboard (drawn
//! from its strokes) and blank frames, as I420 1280x720; and RTP headers
//! for the packets handed to GStreamer's depayloaders.

use protocol::state::Stroke;

use super::layout::{HEIGHT, WIDTH};

const W: usize = WIDTH as usize;
const H: usize = HEIGHT as usize;
/// Board units per axis (see `protocol::event::BoardPoint`).
const BOARD: f32 = 10_000.0;

/// An I420 frame filled with one colour (Y, U, V).
pub fn solid_i420(y: u8, u: u8, v: u8) -> Vec<u8> {
    let mut f = vec![0u8; W * H * 3 / 2];
    f[..W * H].fill(y);
    f[W * H..W * H + W * H / 4].fill(u);
    f[W * H + W * H / 4..].fill(v);
    f
}

/// RGB → BT.601 limited-range YUV.
fn yuv(r: u8, g: u8, b: u8) -> (u8, u8, u8) {
    let (r, g, b) = (r as f32, g as f32, b as f32);
    let y = 16.0 + 0.257 * r + 0.504 * g + 0.098 * b;
    let u = 128.0 - 0.148 * r - 0.291 * g + 0.439 * b;
    let v = 128.0 + 0.439 * r - 0.368 * g - 0.071 * b;
    (y.round() as u8, u.round() as u8, v.round() as u8)
}

fn parse_color(hex: &str) -> (u8, u8, u8) {
    let h = hex.trim_start_matches('#');
    let byte = |i: usize| {
        h.get(i..i + 2)
            .and_then(|s| u8::from_str_radix(s, 16).ok())
            .unwrap_or(0)
    };
    (byte(0), byte(2), byte(4))
}

/// Draws the whiteboard: white, with every stroke as a line of its width.
pub fn whiteboard(strokes: &[Stroke]) -> Vec<u8> {
    let mut f = solid_i420(235, 128, 128);
    for s in strokes {
        let (y, u, v) = {
            let (r, g, b) = parse_color(&s.color);
            yuv(r, g, b)
        };
        let radius = (s.width as f32 / 2.0).max(1.0);
        let pts: Vec<(f32, f32)> = s
            .points
            .iter()
            .map(|[x, y]| (*x as f32 / BOARD * W as f32, *y as f32 / BOARD * H as f32))
            .collect();
        let segs: Vec<((f32, f32), (f32, f32))> = if pts.len() == 1 {
            vec![(pts[0], pts[0])]
        } else {
            pts.windows(2).map(|w| (w[0], w[1])).collect()
        };
        for (a, b) in segs {
            let steps = ((b.0 - a.0).abs().max((b.1 - a.1).abs()) / (radius / 2.0).max(0.5))
                .ceil()
                .max(1.0) as usize;
            for i in 0..=steps {
                let t = i as f32 / steps as f32;
                dot(
                    &mut f,
                    a.0 + (b.0 - a.0) * t,
                    a.1 + (b.1 - a.1) * t,
                    radius,
                    (y, u, v),
                );
            }
        }
    }
    f
}

fn dot(f: &mut [u8], cx: f32, cy: f32, r: f32, (y, u, v): (u8, u8, u8)) {
    let (x0, x1) = (
        (cx - r).floor().max(0.0) as usize,
        ((cx + r).ceil() as usize).min(W - 1),
    );
    let (y0, y1) = (
        (cy - r).floor().max(0.0) as usize,
        ((cy + r).ceil() as usize).min(H - 1),
    );
    for py in y0..=y1 {
        for px in x0..=x1 {
            let (dx, dy) = (px as f32 - cx, py as f32 - cy);
            if dx * dx + dy * dy <= r * r {
                f[py * W + px] = y;
                let ci = (py / 2) * (W / 2) + px / 2;
                f[W * H + ci] = u;
                f[W * H + W * H / 4 + ci] = v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{ParticipantId, StrokeId};

    #[test]
    fn strokes_land_where_their_points_say() {
        let s = Stroke {
            stroke_id: StrokeId::from_uuid(uuid::Uuid::nil()),
            participant_id: ParticipantId::from_uuid(uuid::Uuid::nil()),
            color: "#000000".into(),
            width: 10,
            points: vec![[0, 5000], [10_000, 5000]],
        };
        let f = whiteboard(&[s]);
        let luma = |x: usize, y: usize| f[y * W + x];
        assert_eq!(luma(640, 360), 16, "on the line: black");
        assert_eq!(luma(640, 100), 235, "off the line: white");
        assert_eq!(luma(5, 360), 16, "the line spans the width");
    }

    #[test]
    fn a_solid_frame_is_one_i420_picture() {
        assert_eq!(solid_i420(16, 128, 128).len(), 1280 * 720 * 3 / 2);
    }
}
