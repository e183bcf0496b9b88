//! A simple energy voice-activity detector: enough to find the pauses between
//! phrases where a caption window can be cut without splitting a word, and to
//! skip silence instead of letting whisper invent text for it.
//!
//! A frame is speech when its RMS clears both an absolute floor and a margin
//! over a tracked noise floor. The floor follows quiet frames down at once and
//! creeps up slowly (about ×2 per 7 s), so a fan or a hum raises it while a
//! few seconds of continuous speech do not.

use crate::SAMPLE_RATE;

/// 20 ms frames.
pub(crate) const FRAME: usize = SAMPLE_RATE as usize / 50;

/// About -54 dBFS: quieter than any speech a classroom microphone picks up.
const ABS_FLOOR: f32 = 0.002;
/// Speech must be this many times the noise floor's RMS (+12 dB).
const MARGIN: f32 = 4.0;
const NOISE_RISE: f32 = 1.002;
const NOISE_MIN: f32 = 1e-4;

#[derive(Debug, Clone)]
pub(crate) struct EnergyVad {
    noise: f32,
}

impl EnergyVad {
    pub(crate) fn new() -> EnergyVad {
        EnergyVad { noise: ABS_FLOOR }
    }

    /// Classifies one frame; returns (is speech, rms).
    pub(crate) fn frame(&mut self, samples: &[f32]) -> (bool, f32) {
        let rms = rms(samples);
        self.noise = if rms < self.noise {
            rms.max(NOISE_MIN)
        } else {
            self.noise * NOISE_RISE
        };
        let speech = rms > ABS_FLOOR && rms > self.noise * MARGIN;
        (speech, rms)
    }
}

pub(crate) fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (sum / samples.len() as f64).sqrt() as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(amplitude: f32, n: usize) -> Vec<f32> {
        (0..n).map(|i| amplitude * (i as f32 * 0.2).sin()).collect()
    }

    fn classify(vad: &mut EnergyVad, pcm: &[f32]) -> String {
        pcm.chunks_exact(FRAME)
            .map(|f| if vad.frame(f).0 { 'S' } else { '.' })
            .collect()
    }

    #[test]
    fn speech_over_silence_and_over_steady_noise() {
        let mut vad = EnergyVad::new();
        let mut pcm = vec![0.0; FRAME * 5];
        pcm.extend(tone(0.2, FRAME * 5));
        pcm.extend(vec![0.0; FRAME * 3]);
        assert_eq!(classify(&mut vad, &pcm), ".....SSSSS...");

        // A steady hum well above the absolute floor is not speech once the
        // floor has caught up with it; louder speech over it is.
        let mut vad = EnergyVad::new();
        let hum = tone(0.02, FRAME * 2000);
        let s = classify(&mut vad, &hum);
        assert!(
            s.ends_with(&".".repeat(100)),
            "hum still speech: {}",
            &s[s.len() - 100..]
        );
        let loud = tone(0.3, FRAME * 3);
        assert_eq!(classify(&mut vad, &loud), "SSS");
    }
}
