//! After the encoder: segments uploaded to core's store and logged, the
//! manifest written when a recording is finalized, a crashed run's parts
//! salvaged, and the program published to the relay.

use super::*;

pub(super) fn index_of(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("seg")?.split('.').next()?.parse().ok()
}

pub(super) async fn fetch_page(
    http: &reqwest::Client,
    url: &str,
    dir: &Path,
    key: (DeckId, u32),
) -> anyhow::Result<gst::Buffer> {
    let resp = http.get(url).send().await?.error_for_status()?;
    let bytes = resp.bytes().await?;
    tokio::fs::create_dir_all(dir).await?;
    let file = dir.join(format!("{}-{}.png", key.0, key.1));
    tokio::fs::write(&file, &bytes).await?;
    let frame = tokio::task::spawn_blocking(move || crate::recorder::pipeline::png_to_i420(&file))
        .await??;
    Ok(gst::Buffer::from_mut_slice(frame))
}

/// Seals, uploads and logs segments in index order; at the end writes the
/// manifest and logs `recording.finalized`.
pub(super) async fn uploader(
    recorders: Recorders,
    handle: SessionHandle,
    registry: Registry,
    dir: PathBuf,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    let tenant = handle.tenant;
    let session = handle.id;
    while let Some(job) = jobs.recv().await {
        match job {
            Job::Segment { part, meta } => {
                if let Err(e) = publish_segment(&recorders, &handle, &part, &meta).await {
                    alert(&handle, format!("segment {} not stored: {e}", meta.index)).await;
                }
            }
            Job::Finalize { reply } => {
                let r = finalize(&recorders, &handle, &registry, &dir, tenant, session).await;
                if let Err(e) = &r {
                    tracing::error!(error = %e, "recording not finalized");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
                return;
            }
        }
    }
}

pub(super) async fn publish_segment(
    recorders: &Recorders,
    handle: &SessionHandle,
    part: &Path,
    meta: &Sidecar,
) -> anyhow::Result<()> {
    let side = part.with_file_name(format!("seg{:05}.json", meta.index));
    let part = part.to_path_buf();
    let json = serde_json::to_vec(meta)?;
    let finished = tokio::task::spawn_blocking(move || -> anyhow::Result<spool::Finished> {
        std::fs::write(&side, json)?;
        std::fs::File::open(&side)?.sync_all()?;
        Ok(spool::seal(&part)?)
    })
    .await??;
    upload_and_log(recorders, handle, &finished, meta).await
}

pub(super) async fn upload_and_log(
    recorders: &Recorders,
    handle: &SessionHandle,
    f: &spool::Finished,
    meta: &Sidecar,
) -> anyhow::Result<()> {
    let name = format!("seg{:05}.mp4", meta.index);
    let key = object_key(handle.tenant, handle.id, &name);
    spool::upload(recorders.store(), &f.path, &key).await?;
    let ev = EventBody::RecordingSegment {
        index: meta.index,
        start_ms: meta.start_ms,
        end_ms: meta.end_ms,
        bytes: f.bytes,
        sha256: f.sha256.clone(),
        object_key: key,
    };
    if !log(handle, ev).await {
        anyhow::bail!("the session did not take the segment event");
    }
    tracing::info!(
        index = meta.index,
        start_ms = meta.start_ms,
        end_ms = meta.end_ms,
        bytes = f.bytes,
        "segment stored"
    );
    Ok(())
}

/// The recording's manifest (`manifest.json` beside the segments).
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub session_id: SessionId,
    pub tenant_id: TenantId,
    pub duration_ms: u64,
    pub segments: Vec<ManifestSegment>,
    pub gaps: Vec<ManifestGap>,
    pub audio: Vec<ManifestAudio>,
}

/// A manifest's segment and gap: as the recording's events say.
pub type ManifestSegment = protocol::recording::Segment;
pub type ManifestGap = protocol::recording::Gap;

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestAudio {
    pub participant_id: ParticipantId,
    pub start_ms: u64,
    pub object_key: String,
}

pub(super) async fn finalize(
    recorders: &Recorders,
    handle: &SessionHandle,
    registry: &Registry,
    dir: &Path,
    tenant: TenantId,
    session: SessionId,
) -> Result<(), String> {
    let events = registry
        .log()
        .read_session(tenant, session, Seq::ZERO)
        .await
        .map_err(|e| e.to_string())?;
    let protocol::recording::Recording { segments, gaps, .. } =
        protocol::recording::Recording::from_events(&events);
    // raw per-participant audio
    let mut audio = Vec::new();
    let adir = dir.join("audio");
    if let Ok(mut rd) = tokio::fs::read_dir(&adir).await {
        while let Ok(Some(e)) = rd.next_entry().await {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let Ok(side) = tokio::fs::read(&p).await else {
                continue;
            };
            let Ok(side) = serde_json::from_slice::<RawAudio>(&side) else {
                continue;
            };
            let file = adir.join(&side.file);
            if !file.exists() {
                continue;
            }
            let key = object_key(tenant, session, &format!("audio/{}", side.file));
            match spool::upload(recorders.store(), &file, &key).await {
                Ok(()) => audio.push(ManifestAudio {
                    participant_id: side.participant_id,
                    start_ms: side.start_ms,
                    object_key: key,
                }),
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "raw audio not stored")
                }
            }
        }
    }
    audio.sort_by_key(|a| a.start_ms);
    let duration_ms = segments.iter().map(|s| s.end_ms).max().unwrap_or(0);
    let manifest = Manifest {
        session_id: session,
        tenant_id: tenant,
        duration_ms,
        segments,
        gaps,
        audio,
    };
    let key = object_key(tenant, session, "manifest.json");
    let body = serde_json::to_vec_pretty(&manifest).map_err(|e| e.to_string())?;
    spool::upload_bytes(recorders.store(), &key, body)
        .await
        .map_err(|e| e.to_string())?;
    let ev = EventBody::RecordingFinalized {
        duration_ms,
        segments: manifest.segments.len() as u32,
        manifest_key: key,
    };
    if !log(handle, ev).await {
        return Err("the session did not take recording.finalized".into());
    }
    tracing::info!(
        duration_ms,
        segments = manifest.segments.len(),
        "recording finalized"
    );
    // everything is in object storage now
    let _ = tokio::fs::remove_dir_all(dir).await;
    Ok(())
}

pub(in crate::recorder) struct Salvaged {
    pub next_index: u32,
    pub recorded_to_ms: u64,
}

/// After a restart: finished segments not yet logged are uploaded and
/// logged; torn open segments are removed (the gap event covers them).
pub(in crate::recorder) async fn salvage(
    recorders: &Recorders,
    handle: &SessionHandle,
    state: &SessionState,
    dir: &Path,
) -> Salvaged {
    let mut next_index = state.recording.next_index;
    let mut recorded_to_ms = state.recording.recorded_ms;
    let mut finished = Vec::new();
    if let Ok(mut rd) = tokio::fs::read_dir(dir).await {
        while let Ok(Some(e)) = rd.next_entry().await {
            let p = e.path();
            let Some(index) = index_of(&p) else { continue };
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            if name.ends_with(".mp4.part") {
                tracing::warn!(file = %p.display(), "torn segment from before the restart dropped");
                let _ = tokio::fs::remove_file(&p).await;
                next_index = next_index.max(index + 1);
            } else if name.ends_with(".mp4") && index >= state.recording.next_index {
                finished.push((index, p));
            }
        }
    }
    finished.sort();
    for (index, p) in finished {
        let side = p.with_file_name(format!("seg{index:05}.json"));
        let meta = tokio::fs::read(&side)
            .await
            .ok()
            .and_then(|b| serde_json::from_slice::<Sidecar>(&b).ok());
        let Some(meta) = meta else { continue };
        let f = tokio::task::spawn_blocking(move || spool::seal(&p)).await;
        let Ok(Ok(f)) = f else { continue };
        match upload_and_log(recorders, handle, &f, &meta).await {
            Ok(()) => {
                tracing::info!(index, "segment from before the restart stored");
                next_index = next_index.max(index + 1);
                recorded_to_ms = recorded_to_ms.max(meta.end_ms);
            }
            Err(e) => {
                tracing::warn!(index, error = %e, "segment from before the restart not stored")
            }
        }
    }
    Salvaged {
        next_index,
        recorded_to_ms,
    }
}

/// Serves one run's program (picture and mix): to this edge's public
/// viewers (tracks of the session in the SFU) and to the relay as MoQ tracks
/// (one object per RTP packet, a group per keyframe or second of audio).
/// Follows the uplink: when the relay goes away the relay side waits, when
/// it is back the tracks are published again (video from the next
/// keyframe). Ends with the run (its feed closes).
pub(super) async fn publish_program(
    mut uplink: crate::mesh::Uplink,
    sfu: crate::sfu::Sfu,
    session: SessionId,
    names: [String; 2],
    mut feed: mpsc::Receiver<crate::recorder::pipeline::ProgramFrame>,
) {
    use crate::mesh::TrackPublisher;
    use crate::rtp::MediaPacket;
    use crate::sfu::TapCodec;

    struct Out {
        name: String,
        codec: TapCodec,
        key: Option<crate::sfu::forward::TrackKey>,
        publisher: Option<TrackPublisher>,
        need_keyframe: bool,
        stale: bool,
        last_key_ts: Option<u32>,
    }
    // keyframe requests need no answer: the program has a keyframe a second
    let (kf_tx, mut kf_rx) = mpsc::channel::<()>(4);
    let participant = crate::policy::program_participant();
    let [video_name, audio_name] = names;
    let mut outs = Vec::new();
    for (name, codec) in [(video_name, TapCodec::H264), (audio_name, TapCodec::Opus)] {
        let key = sfu
            .remote_add(
                session,
                participant,
                event::TrackSource::Program,
                codec,
                kf_tx.clone(),
            )
            .await
            .ok();
        outs.push(Out {
            name,
            codec,
            key,
            publisher: None,
            need_keyframe: true,
            stale: true,
            last_key_ts: None,
        });
    }
    loop {
        let frame = tokio::select! {
            f = feed.recv() => match f { Some(f) => f, None => break },
            _ = uplink.changed() => {
                for o in outs.iter_mut() {
                    o.stale = true;
                }
                continue;
            }
            Some(()) = kf_rx.recv() => continue,
        };
        let o = &mut outs[usize::from(frame.audio)];
        let Some((pt, marker, sequence, timestamp, payload)) = crate::rtp::parse(&frame.data)
        else {
            continue;
        };
        let keyframe = match o.codec {
            TapCodec::Opus => true,
            // a new group starts at the first packet of an access unit with SPS/IDR
            _ => {
                let k = crate::sfu::codec::starts_keyframe(str0m::format::Codec::H264, payload)
                    && o.last_key_ts != Some(timestamp);
                if k {
                    o.last_key_ts = Some(timestamp);
                }
                k
            }
        };
        let packet = MediaPacket {
            payload_type: pt,
            sequence,
            timestamp,
            marker,
            keyframe,
            payload: bytes::Bytes::copy_from_slice(payload),
        };
        if let Some(key) = o.key {
            sfu.remote_packet(key, packet.clone());
        }
        if o.stale {
            o.stale = false;
            o.publisher = None;
            if let Some(client) = uplink.client() {
                match client.publish_track(&o.name).await {
                    Ok(p) => {
                        tracing::info!(track = %o.name, "program published to the relay");
                        o.publisher = Some(p);
                        o.need_keyframe = true;
                    }
                    Err(e) => {
                        tracing::warn!(track = %o.name, error = %e, "program not published; asking for a fresh relay token");
                        uplink.refresh();
                    }
                }
            }
        }
        let Some(p) = o.publisher.as_mut() else {
            continue;
        };
        if o.need_keyframe && !keyframe {
            continue;
        }
        o.need_keyframe = false;
        if let Err(e) = p.push(&packet) {
            tracing::warn!(track = %o.name, error = %e, "program feed interrupted");
            o.publisher = None;
            o.stale = true;
        }
    }
    for o in outs {
        if let Some(p) = o.publisher {
            p.finish();
        }
        if let Some(key) = o.key {
            sfu.remote_remove(key).await;
        }
    }
}
