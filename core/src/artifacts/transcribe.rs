//! Raw extraction: the recording's audio as 16 kHz PCM on the media clock,
//! and Whisper (base, beam search) over it.

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
                        })
                        .collect(),
                })
            })();
            let _ = tx.send(r);
        })?;
    rx.await
        .map_err(|_| anyhow::anyhow!("the transcriber thread died"))?
}
