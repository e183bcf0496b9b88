use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("model {0} not found (run deploy/asr-models.sh)")]
    ModelMissing(PathBuf),
    #[error("whisper: {0}")]
    Whisper(String),
}

impl From<whisper_rs::WhisperError> for AsrError {
    fn from(e: whisper_rs::WhisperError) -> Self {
        AsrError::Whisper(e.to_string())
    }
}
