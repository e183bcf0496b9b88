//! Raw extraction: the recording's audio as 16 kHz PCM on the media clock,
//! Whisper (base, beam search) over it, and who spoke each segment, from
//! the raw per-participant audio the recorder keeps beside the mix.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use object_store::ObjectStore;
use object_store::path::Path as ObjectPath;
use protocol::recording::Recording;

use super::derive::{Transcript, TranscriptSegment, Word};

const RATE: u64 = asr::SAMPLE_RATE as u64;

/// What identifies the model for the stage's input hash: its file name and
/// size (a different model is a different transcript).
pub(crate) fn model_identity(path: &Path) -> String {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    format!(
        "{}:{size}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    )
}

/// The recording's audio, mono 16 kHz, every segment decoded and placed at
/// its media start (stretches no segment covers stay silent), so sample
/// `i` is media time `i / 16` ms. Returns the samples and their length in ms.
pub(crate) async fn recording_pcm(
    objects: &Arc<dyn ObjectStore>,
    rec: &Recording,
    duration_ms: u64,
    work: &Path,
) -> anyhow::Result<(Vec<f32>, u64)> {
    let _ = tokio::fs::remove_dir_all(work).await;
    tokio::fs::create_dir_all(work).await?;
    let end_ms = rec
        .segments
        .iter()
        .map(|s| s.end_ms)
        .max()
        .unwrap_or(0)
        .max(duration_ms);
    let mut pcm = vec![0f32; (end_ms * RATE / 1000) as usize];
    let result = async {
        for s in &rec.segments {
            let bytes = objects
                .get(&ObjectPath::from(s.object_key.as_str()))
                .await?
                .bytes()
                .await?;
            let file = work.join(format!("s{:05}.mp4", s.index));
            tokio::fs::write(&file, &bytes).await?;
            let samples = decode(&file).await?;
            let at = (s.start_ms * RATE / 1000) as usize;
            // a segment never writes past its own end (nor the buffer)
            let room =
                ((s.end_ms.saturating_sub(s.start_ms)) * RATE / 1000) as usize + RATE as usize / 10;
            let n = samples.len().min(room).min(pcm.len().saturating_sub(at));
            pcm[at..at + n].copy_from_slice(&samples[..n]);
            let _ = tokio::fs::remove_file(&file).await;
        }
        anyhow::Ok(())
    }
    .await;
    let _ = tokio::fs::remove_dir_all(work).await;
    result?;
    Ok((pcm, end_ms))
}

async fn decode(file: &Path) -> anyhow::Result<Vec<f32>> {
    let out = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-vn", "-ac", "1", "-ar", "16000", "-f", "f32le", "pipe:1"])
        .output()
        .await
        .map_err(|e| anyhow::anyhow!("running ffmpeg: {e}"))?;
    if !out.status.success() {
        anyhow::bail!(
            "decoding {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out
        .stdout
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

static MODEL: Mutex<Option<(PathBuf, Arc<asr::Model>)>> = Mutex::new(None);

fn model(path: &Path) -> anyhow::Result<Arc<asr::Model>> {
    let mut slot = MODEL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((p, m)) = slot.as_ref()
        && p == path
    {
        return Ok(m.clone());
    }
    let m = Arc::new(asr::Model::load(path)?);
    *slot = Some((path.to_owned(), m.clone()));
    Ok(m)
}

/// Transcribes on a thread of its own at low CPU priority (nice 10), so a
/// long recording never slows anything live on the same machine.
pub(crate) async fn transcribe(
    model_path: PathBuf,
    pcm: Vec<f32>,
    threads: u32,
) -> anyhow::Result<Transcript> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let span = tracing::Span::current();
    std::thread::Builder::new()
        .name("transcriber".into())
        .spawn(move || {
            let _e = span.enter();
            // SAFETY: setpriority on this thread only (Linux: a thread id is
            // a process id for PRIO_PROCESS).
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, 10);
            }
            let r = (|| {
                let m = model(&model_path)?;
                let opts = asr::Options {
                    threads,
                    ..asr::Options::default()
                };
                let segs = m.transcribe(&pcm, &opts)?;
                Ok(Transcript {
                    model: model_path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    duration_ms: pcm.len() as u64 * 1000 / RATE,
                    segments: segs
                        .into_iter()
                        .filter(|s| !s.text.trim().is_empty())
                        .map(|s| TranscriptSegment {
                            start_ms: s.start_ms,
                            end_ms: s.end_ms,
                            text: s.text.trim().to_owned(),
                            words: s
                                .words
                                .into_iter()
                                .map(|w| Word {
                                    start_ms: w.start_ms,
                                    end_ms: w.end_ms,
                                    text: w.text.trim().to_owned(),
                                })
                                .collect(),
                            speaker: None,
                        })
                        .collect(),
                })
            })();
            let _ = tx.send(r);
        })?;
    rx.await
        .map_err(|_| anyhow::anyhow!("the transcriber thread died"))?
}

/// Loudness is measured in frames this long.
const FRAME_MS: u64 = 100;
/// A speaker's share of a segment's loudness that makes it theirs.
const DOMINANT: f32 = 0.6;
/// Below this mean power (about -50 dBFS) a track is silent.
const SILENT: f32 = 1e-5;

/// Each seat's loudness on the media clock, one mean power per 100 ms
/// frame, from the raw tracks listed in the recording's manifest (`audio`:
/// a seat's track starts at its `start_ms`). A missing manifest or track
/// leaves that voice out.
pub(crate) async fn voices(
    objects: &Arc<dyn ObjectStore>,
    manifest_key: &str,
    end_ms: u64,
    work: &Path,
) -> anyhow::Result<std::collections::HashMap<String, Vec<f32>>> {
    #[derive(serde::Deserialize)]
    struct Track {
        participant_id: String,
        start_ms: u64,
        object_key: String,
    }
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(default)]
        audio: Vec<Track>,
    }
    let mut out: std::collections::HashMap<String, Vec<f32>> = Default::default();
    let manifest = match objects.get(&ObjectPath::from(manifest_key)).await {
        Ok(m) => m.bytes().await?,
        Err(object_store::Error::NotFound { .. }) => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    let manifest: Manifest = serde_json::from_slice(&manifest)?;
    if manifest.audio.is_empty() {
        return Ok(out);
    }
    tokio::fs::create_dir_all(work).await?;
    let frames = (end_ms / FRAME_MS + 1) as usize;
    let per_frame = (RATE * FRAME_MS / 1000) as usize;
    for (n, t) in manifest.audio.iter().enumerate() {
        let bytes = match objects.get(&ObjectPath::from(t.object_key.as_str())).await {
            Ok(g) => g.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => continue,
            Err(e) => return Err(e.into()),
        };
        let file = work.join(format!("voice{n}.ogg"));
        tokio::fs::write(&file, &bytes).await?;
        let samples = decode(&file).await;
        let _ = tokio::fs::remove_file(&file).await;
        let samples = match samples {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(track = %t.object_key, error = %e, "a raw audio track does not decode; left out of attribution");
                continue;
            }
        };
        let power = out
            .entry(t.participant_id.clone())
            .or_insert_with(|| vec![0.0; frames]);
        let first = (t.start_ms / FRAME_MS) as usize;
        for (i, chunk) in samples.chunks(per_frame).enumerate() {
            let Some(slot) = power.get_mut(first + i) else {
                break;
            };
            *slot += chunk.iter().map(|x| x * x).sum::<f32>() / chunk.len() as f32;
        }
    }
    Ok(out)
}

/// The seat whose voice dominates `from_ms..to_ms` (at least 60 % of the
/// loudness, and not silent), if one does.
fn dominant(
    voices: &std::collections::HashMap<String, Vec<f32>>,
    from_ms: u64,
    to_ms: u64,
) -> Option<String> {
    let from = (from_ms / FRAME_MS) as usize;
    let to = (to_ms.div_ceil(FRAME_MS) as usize).max(from + 1);
    let mut total = 0f32;
    let mut best: Option<(&String, f32)> = None;
    for (seat, power) in voices {
        let sum: f32 = power.iter().skip(from).take(to - from).sum();
        total += sum;
        if best.is_none_or(|(_, b)| sum > b) {
            best = Some((seat, sum));
        }
    }
    best.filter(|(_, b)| *b >= DOMINANT * total && *b / (to - from) as f32 > SILENT)
        .map(|(seat, _)| seat.clone())
}

/// Names who spoke: each word goes to the voice that dominates its time (a
/// word with none goes with its neighbours), and a segment in which the
/// voice changes is split where it does, so one segment is one speaker's.
/// A segment without word times is attributed as a whole.
pub(crate) fn attribute(t: &mut Transcript, voices: &std::collections::HashMap<String, Vec<f32>>) {
    let mut out = Vec::with_capacity(t.segments.len());
    for seg in std::mem::take(&mut t.segments) {
        if seg.words.is_empty() {
            let speaker = dominant(voices, seg.start_ms, seg.end_ms);
            out.push(TranscriptSegment { speaker, ..seg });
            continue;
        }
        let said: Vec<Option<String>> = seg
            .words
            .iter()
            .map(|w| dominant(voices, w.start_ms.saturating_sub(50), w.end_ms + 50))
            .collect();
        // runs of one speaker; unattributed words join the run they are in
        let mut runs: Vec<(Option<String>, Vec<Word>)> = Vec::new();
        for (w, who) in seg.words.iter().zip(said) {
            match runs.last_mut() {
                Some((run_who, ws)) if who.is_none() || *run_who == who || run_who.is_none() => {
                    if run_who.is_none() {
                        *run_who = who;
                    }
                    ws.push(w.clone());
                }
                _ => runs.push((who, vec![w.clone()])),
            }
        }
        if runs.len() == 1 {
            let speaker = runs.pop().and_then(|r| r.0);
            out.push(TranscriptSegment { speaker, ..seg });
            continue;
        }
        let n = runs.len();
        for (i, (speaker, words)) in runs.into_iter().enumerate() {
            let start_ms = if i == 0 {
                seg.start_ms
            } else {
                words[0].start_ms
            };
            let end_ms = if i + 1 == n {
                seg.end_ms
            } else {
                words.last().map_or(seg.end_ms, |w| w.end_ms)
            };
            let text = words
                .iter()
                .map(|w| w.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            out.push(TranscriptSegment {
                start_ms,
                end_ms,
                text,
                words,
                speaker,
            });
        }
    }
    t.segments = out;
}

#[cfg(test)]
mod attribution_tests {
    use super::*;

    fn seg(start_ms: u64, end_ms: u64) -> TranscriptSegment {
        TranscriptSegment {
            start_ms,
            end_ms,
            text: "x".into(),
            words: vec![],
            speaker: None,
        }
    }

    #[test]
    fn the_dominant_voice_speaks_a_segment_and_nobody_a_mixed_or_silent_one() {
        // 10 s; ana loud 0-3 s, ben loud 4-7 s, both 8-9 s
        let mut ana = vec![0.0f32; 100];
        let mut ben = vec![0.0f32; 100];
        for (i, p) in ana.iter_mut().enumerate() {
            *p = if i < 30 || (80..90).contains(&i) {
                0.1
            } else {
                1e-7
            };
        }
        for (i, p) in ben.iter_mut().enumerate() {
            *p = if (40..70).contains(&i) || (80..90).contains(&i) {
                0.1
            } else {
                1e-7
            };
        }
        let voices = [("ana".to_owned(), ana), ("ben".to_owned(), ben)]
            .into_iter()
            .collect();
        let mut t = Transcript {
            model: "m".into(),
            duration_ms: 10_000,
            segments: vec![
                seg(0, 2_900),
                seg(4_100, 6_500),
                seg(8_000, 9_000),
                seg(9_200, 9_900),
                seg(2_500, 4_500),
            ],
        };
        attribute(&mut t, &voices);
        let who: Vec<Option<&str>> = t.segments.iter().map(|s| s.speaker.as_deref()).collect();
        // the last: ana 2.5-3.0 s and ben 4.0-4.5 s, half each: nobody's
        assert_eq!(who, vec![Some("ana"), Some("ben"), None, None, None]);

        // one segment over both voices (the recognizer heard no pause): split
        // where the voice changes, each part its speaker's
        let word = |start_ms: u64, end_ms: u64, text: &str| Word {
            start_ms,
            end_ms,
            text: text.into(),
        };
        let mut merged = Transcript {
            model: "m".into(),
            duration_ms: 10_000,
            segments: vec![TranscriptSegment {
                start_ms: 0,
                end_ms: 7_000,
                text: "hello there kangaroos hop".into(),
                words: vec![
                    word(500, 1_000, "hello"),
                    // stretched over the silence after it, as Whisper does
                    word(1_000, 3_900, "there"),
                    word(4_200, 4_900, "kangaroos"),
                    word(5_000, 5_000, "hop"),
                ],
                speaker: None,
            }],
        };
        attribute(&mut merged, &voices);
        let parts: Vec<(Option<&str>, &str, u64, u64)> = merged
            .segments
            .iter()
            .map(|s| (s.speaker.as_deref(), s.text.as_str(), s.start_ms, s.end_ms))
            .collect();
        assert_eq!(
            parts,
            vec![
                (Some("ana"), "hello there", 0, 3_900),
                (Some("ben"), "kangaroos hop", 4_200, 7_000),
            ]
        );
    }
}
