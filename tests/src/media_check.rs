//! Looks at recordings with ffmpeg/ffprobe: duration, clean decoding,
//! loudness, and per-frame colours at chosen points (to see which layout
//! each frame shows, and when). Also makes media for publishers to send:
//! a real VP8 clip (`vp8_clip`) and speech as Opus (`speech_opus`,
//! `speech_clip`: espeak-ng's voice, placed at exact offsets).

use std::path::Path;

use anyhow::Context;

/// Runs a command, returns (success, stdout, stderr).
async fn run(cmd: &str, args: &[&str]) -> anyhow::Result<(bool, Vec<u8>, String)> {
    let out = tokio::process::Command::new(cmd)
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("running {cmd}"))?;
    Ok((
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// The container's duration in seconds, as ffprobe reads it.
pub async fn duration_s(file: &Path) -> anyhow::Result<f64> {
    let f = file.display().to_string();
    let (ok, out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
            &f,
        ],
    )
    .await?;
    anyhow::ensure!(ok, "ffprobe {f}: {err}");
    Ok(String::from_utf8_lossy(&out).trim().parse()?)
}

/// The streams' codec names (e.g. ["h264", "aac"]).
pub async fn codecs(file: &Path) -> anyhow::Result<Vec<String>> {
    let f = file.display().to_string();
    let (ok, out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name",
            "-of",
            "csv=p=0",
            &f,
        ],
    )
    .await?;
    anyhow::ensure!(ok, "ffprobe {f}: {err}");
    Ok(String::from_utf8_lossy(&out)
        .lines()
        .map(|l| l.trim().trim_end_matches(',').to_owned())
        .filter(|l| !l.is_empty())
        .collect())
}

/// Everything ffmpeg complains about while decoding the whole file (empty
/// when it decodes cleanly).
pub async fn decode_errors(file: &Path) -> anyhow::Result<String> {
    let f = file.display().to_string();
    let (ok, _, err) = run(
        "ffmpeg",
        &["-nostdin", "-v", "error", "-i", &f, "-f", "null", "-"],
    )
    .await?;
    if !ok && err.trim().is_empty() {
        return Ok("ffmpeg failed without a message".into());
    }
    Ok(err.trim().to_owned())
}

/// The loudest sample of the audio, in dB (-91 is digital silence).
pub async fn max_volume_db(file: &Path) -> anyhow::Result<f64> {
    max_volume_db_between(file, 0.0, f64::MAX).await
}

/// The loudest sample between two times (s) of the file.
pub async fn max_volume_db_between(file: &Path, from_s: f64, to_s: f64) -> anyhow::Result<f64> {
    let f = file.display().to_string();
    let (ss, t) = (
        format!("{from_s:.3}"),
        format!("{:.3}", (to_s - from_s).min(1e6)),
    );
    let (_, _, err) = run(
        "ffmpeg",
        &[
            "-nostdin",
            "-hide_banner",
            "-ss",
            &ss,
            "-t",
            &t,
            "-i",
            &f,
            "-map",
            "0:a",
            "-af",
            "volumedetect",
            "-f",
            "null",
            "-",
        ],
    )
    .await?;
    let v = err
        .lines()
        .find_map(|l| l.split("max_volume:").nth(1))
        .and_then(|v| v.trim().trim_end_matches("dB").trim().parse::<f64>().ok())
        .with_context(|| format!("no volume for {f}: {err}"))?;
    Ok(v)
}

/// The picture is sampled on a 16x9 grid (each cell the average of an
/// 80x80 block of the 1280x720 frame).
pub const GRID_W: usize = 16;
pub const GRID_H: usize = 9;

/// One decoded frame: its time in the file and its 16x9 RGB thumbnail.
#[derive(Debug, Clone)]
pub struct Frame {
    pub pts_s: f64,
    pub rgb: Vec<u8>,
}

impl Frame {
    pub fn at(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * GRID_W + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// How much picture the frame has: the sum of R, G and B of the
    /// brightest cell of its 16x9 grid (0..=765).
    pub fn brightest(&self) -> u32 {
        (0..GRID_H)
            .flat_map(|y| (0..GRID_W).map(move |x| (x, y)))
            .map(|(x, y)| self.at(x, y).iter().map(|c| *c as u32).sum::<u32>())
            .max()
            .unwrap_or(0)
    }
}

/// The files of a ZIP archive, by name.
pub fn unzip(data: &[u8]) -> anyhow::Result<std::collections::BTreeMap<String, Vec<u8>>> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(data))?;
    let mut out = std::collections::BTreeMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i)?;
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        out.insert(f.name().to_owned(), buf);
    }
    Ok(out)
}

/// Every video frame of a file, in order, with its presentation time.
pub async fn frames(file: &Path) -> anyhow::Result<Vec<Frame>> {
    let f = file.display().to_string();
    let (ok, out, err) = run(
        "ffmpeg",
        &[
            "-nostdin",
            "-hide_banner",
            "-v",
            "info",
            "-i",
            &f,
            "-map",
            "0:v",
            "-fps_mode",
            "passthrough",
            "-vf",
            "scale=16:9:flags=area,showinfo",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ],
    )
    .await?;
    anyhow::ensure!(ok, "decoding {f}: {err}");
    let times: Vec<f64> = err
        .lines()
        .filter(|l| l.contains("Parsed_showinfo") && l.contains("pts_time:"))
        .filter_map(|l| {
            l.split("pts_time:")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect();
    let size = GRID_W * GRID_H * 3;
    let n = out.len() / size;
    anyhow::ensure!(n == times.len(), "{n} frames but {} times", times.len());
    Ok(out
        .chunks_exact(size)
        .zip(times)
        .map(|(c, t)| Frame {
            pts_s: t,
            rgb: c.to_vec(),
        })
        .collect())
}

/// The first presentation time of the video stream.
pub async fn video_start_s(file: &Path) -> anyhow::Result<f64> {
    let f = file.display().to_string();
    let (ok, out, err) = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=start_time",
            "-of",
            "csv=p=0",
            &f,
        ],
    )
    .await?;
    anyhow::ensure!(ok, "ffprobe {f}: {err}");
    Ok(String::from_utf8_lossy(&out)
        .trim()
        .trim_end_matches(',')
        .parse()
        .unwrap_or(0.0))
}

/// Squared distance between two colours.
pub fn dist2(a: [u8; 3], b: [u8; 3]) -> u32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as i32 - y as i32).pow(2) as u32)
        .sum()
}

/// The name of the nearest palette colour within `max` distance, or "other".
pub fn classify(c: [u8; 3], palette: &[(&'static str, [u8; 3])], max: u32) -> &'static str {
    palette
        .iter()
        .map(|(n, p)| (dist2(c, *p), *n))
        .min()
        .filter(|(d, _)| *d <= max * max)
        .map(|(_, n)| n)
        .unwrap_or("other")
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// A real VP8 clip (ffmpeg's moving test pattern) as frames, for clients
/// that must send media a decoder accepts.
pub async fn vp8_clip(
    dir: &Path,
    width: u32,
    height: u32,
    fps: u32,
    seconds: u32,
) -> anyhow::Result<Vec<Vec<u8>>> {
    vp8_clip_of(dir, "testsrc2", width, height, fps, seconds).await
}

/// A VP8 clip of one solid colour (an ffmpeg colour name or `0xRRGGBB`):
/// a pattern a test can look for in a composed picture.
pub async fn vp8_color_clip(dir: &Path, color: &str, seconds: u32) -> anyhow::Result<Vec<Vec<u8>>> {
    vp8_clip_of(dir, &format!("color=c={color}"), 640, 360, 30, seconds).await
}

async fn vp8_clip_of(
    dir: &Path,
    source: &str,
    width: u32,
    height: u32,
    fps: u32,
    seconds: u32,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let tag: String = source
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let file = dir.join(format!("clip-{tag}-{width}x{height}-{fps}.ivf"));
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg(format!(
            "{source}{sep}size={width}x{height}:rate={fps}",
            sep = if source.contains('=') { ':' } else { '=' }
        ))
        .args([
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libvpx",
            "-b:v",
            "1500k",
            "-g",
        ])
        .arg((fps * 2).to_string())
        .args(["-deadline", "realtime", "-cpu-used", "8"])
        .arg(&file)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "ffmpeg: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_ivf(&std::fs::read(&file)?)
}

/// The frames of an IVF file.
pub fn read_ivf(data: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    anyhow::ensure!(data.len() >= 32 && &data[..4] == b"DKIF", "not an IVF file");
    let header = u16::from_le_bytes([data[6], data[7]]) as usize;
    let mut at = header;
    let mut frames = Vec::new();
    while at + 12 <= data.len() {
        let size = u32::from_le_bytes(data[at..at + 4].try_into()?) as usize;
        at += 12;
        anyhow::ensure!(at + size <= data.len(), "truncated IVF frame");
        frames.push(data[at..at + size].to_vec());
        at += size;
    }
    Ok(frames)
}

/// Reassembles H.264 RTP payloads (RFC 6184: single NAL units, STAP-A,
/// FU-A) into an Annex B stream ffmpeg can read.
pub fn h264_annexb(payloads: &[&[u8]]) -> Vec<u8> {
    const START: [u8; 4] = [0, 0, 0, 1];
    let mut out = Vec::new();
    for p in payloads {
        let Some(&first) = p.first() else { continue };
        match first & 0x1f {
            1..=23 => {
                out.extend_from_slice(&START);
                out.extend_from_slice(p);
            }
            24 => {
                let mut at = 1;
                while at + 2 <= p.len() {
                    let n = u16::from_be_bytes([p[at], p[at + 1]]) as usize;
                    at += 2;
                    if at + n > p.len() {
                        break;
                    }
                    out.extend_from_slice(&START);
                    out.extend_from_slice(&p[at..at + n]);
                    at += n;
                }
            }
            28 if p.len() > 2 => {
                if p[1] & 0x80 != 0 {
                    out.extend_from_slice(&START);
                    out.push((first & 0xe0) | (p[1] & 0x1f));
                }
                out.extend_from_slice(&p[2..]);
            }
            _ => {}
        }
    }
    out
}

/// The length of one Opus packet of a speech clip.
pub const OPUS_FRAME_MS: u64 = 20;

/// Speech to publish: 48 kHz mono Opus, one packet per 20 ms, the way a
/// browser's microphone sends it (`rtc_client::PublishOptions::audio_clip`).
/// Packet `n` holds the clip's audio from `n * 20` ms (a receiver hears it
/// 6.5 ms later: the encoder's lookahead, which only Ogg's pre-skip undoes).
#[derive(Debug, Clone)]
pub struct SpeechClip {
    /// Raw Opus packets (no Ogg framing), 20 ms each, in order.
    pub packets: Vec<Vec<u8>>,
    /// Where each piece's voice is audible in the clip (ms from the clip's
    /// start, espeak's own lead-in and trailing silence trimmed), with its
    /// text, in the order given.
    pub spoken: Vec<(u64, u64, String)>,
    pub duration_ms: u64,
}

impl SpeechClip {
    /// Every piece's text, joined: the reference transcript.
    pub fn script(&self) -> String {
        self.spoken
            .iter()
            .map(|(_, _, t)| t.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// `text` spoken by espeak-ng (en-us, 150 words a minute) as 20 ms Opus
/// packets. Work files go to `dir`.
pub async fn speech_opus(dir: &Path, text: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let pcm = espeak_pcm48(dir, 0, text).await?;
    let ms = (pcm.len() as u64).div_ceil(48);
    opus_packets(dir, &pcm, ms).await
}

/// A clip of `total_ms` with each `(offset_ms, text)` spoken from its
/// offset (exact to the sample) and silence everywhere else, as 20 ms Opus
/// packets. Pieces must be in order, must not overlap and must end within
/// the clip. Work files go to `dir`.
pub async fn speech_clip(
    dir: &Path,
    pieces: &[(u64, &str)],
    total_ms: u64,
) -> anyhow::Result<Vec<Vec<u8>>> {
    Ok(speech_clip_timed(dir, pieces, total_ms).await?.packets)
}

/// `speech_clip`, also telling where each piece's voice is audible.
pub async fn speech_clip_timed(
    dir: &Path,
    pieces: &[(u64, &str)],
    total_ms: u64,
) -> anyhow::Result<SpeechClip> {
    let mut voices = Vec::new();
    for (i, (offset_ms, text)) in pieces.iter().enumerate() {
        voices.push((*offset_ms, *text, espeak_pcm48(dir, i, text).await?));
    }
    assemble(dir, &voices, total_ms).await
}

/// Sentences read one after another like a lecture: the first after
/// `lead_ms` of silence, each next one `pause_ms` after the one before ends,
/// and `pause_ms` of silence at the end.
pub async fn speech_paced(
    dir: &Path,
    sentences: &[&str],
    lead_ms: u64,
    pause_ms: u64,
) -> anyhow::Result<SpeechClip> {
    let mut voices = Vec::new();
    let mut at = lead_ms;
    for (i, text) in sentences.iter().enumerate() {
        let voice = espeak_pcm48(dir, i, text).await?;
        let len_ms = (voice.len() as u64).div_ceil(48);
        voices.push((at, *text, voice));
        at += len_ms + pause_ms;
    }
    assemble(dir, &voices, at).await
}

/// Places each voice at its offset in `total_ms` of silence and encodes it.
async fn assemble(
    dir: &Path,
    voices: &[(u64, &str, Vec<i16>)],
    total_ms: u64,
) -> anyhow::Result<SpeechClip> {
    let mut pcm = vec![0i16; (total_ms * 48) as usize];
    let mut spoken = Vec::new();
    let mut free_from = 0usize;
    for (i, (offset_ms, text, voice)) in voices.iter().enumerate() {
        let at = (*offset_ms * 48) as usize;
        anyhow::ensure!(
            at >= free_from,
            "piece {i} at {offset_ms} ms overlaps the one before (it ends at {} ms)",
            free_from / 48
        );
        anyhow::ensure!(
            at + voice.len() <= pcm.len(),
            "piece {i} ({} ms from {offset_ms} ms) does not fit in {total_ms} ms",
            voice.len() / 48
        );
        pcm[at..at + voice.len()].copy_from_slice(voice);
        free_from = at + voice.len();
        // where the voice is audible (above ~ -40 dBFS)
        let loud = |s: &i16| s.unsigned_abs() > 330;
        let first = voice.iter().position(loud).unwrap_or(0);
        let last = voice.iter().rposition(loud).unwrap_or(0);
        spoken.push((
            ((at + first) / 48) as u64,
            ((at + last) / 48) as u64,
            text.to_string(),
        ));
    }
    let packets = opus_packets(dir, &pcm, total_ms).await?;
    Ok(SpeechClip {
        packets,
        spoken,
        duration_ms: total_ms,
    })
}

/// espeak-ng's voice for `text`, as 48 kHz mono 16-bit samples.
async fn espeak_pcm48(dir: &Path, n: usize, text: &str) -> anyhow::Result<Vec<i16>> {
    let wav = dir.join(format!("speech-piece{n}.wav"));
    let raw = dir.join(format!("speech-piece{n}.s16"));
    let out = tokio::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(text)
        .output()
        .await
        .context("running espeak-ng")?;
    anyhow::ensure!(
        out.status.success(),
        "espeak-ng: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let w = wav.display().to_string();
    let r = raw.display().to_string();
    let (ok, _, err) = run(
        "ffmpeg",
        &[
            "-nostdin", "-v", "error", "-y", "-i", &w, "-ac", "1", "-ar", "48000", "-f", "s16le",
            &r,
        ],
    )
    .await?;
    anyhow::ensure!(ok, "ffmpeg (resampling espeak's voice): {err}");
    Ok(std::fs::read(&raw)?
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect())
}

/// Encodes 48 kHz mono samples as Opus (20 ms frames, VoIP) and returns the
/// packets.
async fn opus_packets(dir: &Path, pcm: &[i16], total_ms: u64) -> anyhow::Result<Vec<Vec<u8>>> {
    let raw = dir.join("speech-clip.s16");
    let ogg = dir.join("speech-clip.ogg");
    std::fs::write(
        &raw,
        pcm.iter()
            .flat_map(|s| s.to_le_bytes())
            .collect::<Vec<u8>>(),
    )?;
    let (r, o) = (raw.display().to_string(), ogg.display().to_string());
    let (ok, _, err) = run(
        "ffmpeg",
        &[
            "-nostdin",
            "-v",
            "error",
            "-y",
            "-f",
            "s16le",
            "-ar",
            "48000",
            "-ac",
            "1",
            "-i",
            &r,
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            "-frame_duration",
            "20",
            "-application",
            "voip",
            "-f",
            "ogg",
            &o,
        ],
    )
    .await?;
    anyhow::ensure!(ok, "ffmpeg (Opus): {err}");
    let packets = ogg_opus_packets(&std::fs::read(&ogg)?)?;
    let want = total_ms.div_ceil(OPUS_FRAME_MS) as usize;
    anyhow::ensure!(
        packets.len() >= want,
        "{} Opus packets for {total_ms} ms",
        packets.len()
    );
    Ok(packets)
}

/// The packets of an Ogg Opus stream (RFC 7845), without its OpusHead and
/// OpusTags headers.
pub fn ogg_opus_packets(data: &[u8]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut packets = Vec::new();
    let mut current = Vec::new();
    let mut at = 0usize;
    while at < data.len() {
        anyhow::ensure!(
            data.len() >= at + 27 && &data[at..at + 4] == b"OggS",
            "no Ogg page at byte {at}"
        );
        let segments = data[at + 26] as usize;
        let table = at + 27;
        anyhow::ensure!(data.len() >= table + segments, "truncated Ogg page");
        let mut body = table + segments;
        for &lace in &data[table..table + segments] {
            let lace = lace as usize;
            anyhow::ensure!(data.len() >= body + lace, "truncated Ogg page");
            current.extend_from_slice(&data[body..body + lace]);
            body += lace;
            // a lacing value below 255 ends the packet (255: it goes on,
            // possibly on the next page)
            if lace < 255 {
                packets.push(std::mem::take(&mut current));
            }
        }
        at = body;
    }
    Ok(packets
        .into_iter()
        .filter(|p| !p.starts_with(b"OpusHead") && !p.starts_with(b"OpusTags"))
        .collect())
}
