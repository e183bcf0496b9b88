//! The program pipeline on its own: stills and layouts land where and when
//! they are asked to, and the segments it cuts decode.

use std::time::Duration;

use edge_node::recorder::layout::{Place, Source};
use edge_node::recorder::pipeline::{Note, Program};
use futures::StreamExt;

fn red_i420() -> Vec<u8> {
    edge_node::recorder::raster::solid_i420(81, 90, 240)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slide_shown_at_a_time_is_in_the_segment_from_that_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Program::new(dir.path(), 0, false).unwrap();
    let mut notes = Box::pin(p.notes().unwrap());
    p.play().unwrap();
    let full = Place {
        x: 0,
        y: 0,
        w: 1280,
        h: 720,
        alpha: 1.0,
        zorder: 5,
    };
    let hidden = Place {
        x: 0,
        y: 0,
        w: 16,
        h: 16,
        alpha: 0.0,
        zorder: 0,
    };
    p.set_layout(0, vec![(Source::Slide, hidden)]);
    p.set_layout(1500, vec![(Source::Slide, full)]);
    let frame = gstreamer::Buffer::from_mut_slice(red_i420());
    let mut shown = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut closed = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let now = p.running_ms();
                if !shown && now >= 1000 {
                    p.set_slide(frame.clone(), 1000);
                    shown = true;
                }
                p.tick_stills();
                if now >= 3000 && closed.is_empty() {
                    p.begin_finish();
                }
            }
            n = notes.next() => match n {
                Some(Note::SegmentClosed { path, running_ms }) => closed.push((path, running_ms)),
                Some(Note::Eos) | None => break,
                Some(Note::Error(e)) => panic!("{e}"),
                Some(_) => {}
            },
            _ = tokio::time::sleep_until(deadline) => panic!("no EOS"),
        }
    }
    p.stop();
    assert_eq!(closed.len(), 1, "{closed:?}");
    let seg = &closed[0].0;
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(seg)
        .args([
            "-vf",
            "scale=1:1",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let px: Vec<[u8; 3]> = out
        .stdout
        .chunks_exact(3)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    assert!(px.len() > 60, "{} frames", px.len());
    let red = |c: &[u8; 3]| c[0] > 200 && c[1] < 50 && c[2] < 50;
    let first_red = px.iter().position(red).expect("the slide shows");
    // 30 fps: the slide shown from 1.5 s is in frame 45 (frame 0 is dropped)
    assert!(
        (43..=46).contains(&first_red),
        "first red frame {first_red}"
    );
    assert!(px[first_red..].iter().all(red));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_caption_branch_hands_over_the_mix_at_16_khz_on_the_running_clock() {
    use std::sync::{Arc, Mutex};
    let dir = tempfile::tempdir().unwrap();
    let p = Program::new(dir.path(), 0, true).unwrap();
    let mut notes = Box::pin(p.notes().unwrap());
    let got: Arc<Mutex<Vec<(u64, usize)>>> = Arc::default();
    let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (g, e) = (got.clone(), ended.clone());
    assert!(p.caption_audio(
        move |running_ns, pcm| g.lock().unwrap().push((running_ns, pcm.len())),
        move || e.store(true, std::sync::atomic::Ordering::SeqCst),
    ));
    p.play().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut finishing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if !finishing && p.running_ms() >= 2_000 {
                    p.begin_finish();
                    finishing = true;
                }
            }
            n = notes.next() => match n {
                Some(Note::Eos) | None => break,
                Some(Note::Error(e)) => panic!("{e}"),
                Some(_) => {}
            },
            _ = tokio::time::sleep_until(deadline) => panic!("no EOS"),
        }
    }
    p.stop();
    let got = got.lock().unwrap().clone();
    let samples: usize = got.iter().map(|(_, n)| n).sum();
    // about 2 s at 16 kHz (the end is cut a little before the finish)
    assert!((28_000..=34_000).contains(&samples), "{samples} samples");
    assert!(got[0].0 < 50_000_000, "starts at running time 0: {got:?}");
    // continuous: each buffer starts where the one before ended (give or
    // take the resampler settling in)
    for w in got.windows(2) {
        let next = w[0].0 + w[0].1 as u64 * 62_500;
        assert!(
            w[1].0.abs_diff(next) < 5_000_000,
            "{:?} then {:?}",
            w[0],
            w[1]
        );
    }
    assert!(
        ended.load(std::sync::atomic::Ordering::SeqCst),
        "EOS reached the branch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unattended_caption_branch_never_holds_up_the_end() {
    // built with captions, but the captioner never came (no model): the
    // branch fills up and must still let the recording end
    let dir = tempfile::tempdir().unwrap();
    let p = Program::new(dir.path(), 0, true).unwrap();
    let mut notes = Box::pin(p.notes().unwrap());
    p.play().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut finishing = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if !finishing && p.running_ms() >= 3_000 {
                    p.begin_finish();
                    finishing = true;
                }
            }
            n = notes.next() => match n {
                Some(Note::Eos) | None => break,
                Some(Note::Error(e)) => panic!("{e}"),
                Some(_) => {}
            },
            _ = tokio::time::sleep_until(deadline) => panic!("no EOS"),
        }
    }
    p.stop();
}
