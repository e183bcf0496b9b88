//! Per-participant rate limits (token buckets): a chat flood from one
//! client gets 429s and never slows the class for anyone else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use protocol::{Command, ParticipantId};

#[derive(Clone, Copy)]
struct Rule {
    burst: f64,
    per_sec: f64,
}

/// Text that lands in front of everyone: chat, questions.
const CONTENT: Rule = Rule {
    burst: 5.0,
    per_sec: 1.0,
};
/// Everything else (votes, hands, strokes, moderation).
const ACTIONS: Rule = Rule {
    burst: 40.0,
    per_sec: 20.0,
};

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Content,
    Actions,
}

fn kind(cmd: &Command) -> Kind {
    match cmd {
        Command::Chat { .. } | Command::Ask { .. } | Command::SaveNote { .. } => Kind::Content,
        Command::Join { .. }
        | Command::Leave { .. }
        | Command::ChangePermissions { .. }
        | Command::SetScene { .. }
        | Command::ShowSlide { .. }
        | Command::SetLayout { .. }
        | Command::Stroke { .. }
        | Command::ClearWhiteboard
        | Command::DeleteChat { .. }
        | Command::Upvote { .. }
        | Command::Answer { .. }
        | Command::Dismiss { .. }
        | Command::OpenPoll { .. }
        | Command::Vote { .. }
        | Command::ClosePoll { .. }
        | Command::RaiseHand
        | Command::LowerHand { .. }
        | Command::ShowCta { .. }
        | Command::HideCta { .. }
        | Command::SetConsent { .. }
        | Command::Mute { .. }
        | Command::Remove { .. }
        | Command::Lock { .. }
        | Command::ExamMode { .. }
        | Command::KillSwitch { .. }
        | Command::End
        | Command::System { .. } => Kind::Actions,
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Clone, Default)]
pub struct RateLimits {
    buckets: Arc<Mutex<HashMap<(ParticipantId, Kind), Bucket>>>,
    off: bool,
}

impl RateLimits {
    pub fn new(enabled: bool) -> Self {
        RateLimits {
            buckets: Default::default(),
            off: !enabled,
        }
    }

    pub fn allow(&self, who: ParticipantId, cmd: &Command) -> bool {
        self.off || self.allow_at(who, cmd, Instant::now())
    }

    fn allow_at(&self, who: ParticipantId, cmd: &Command, now: Instant) -> bool {
        let k = kind(cmd);
        let rule = match k {
            Kind::Content => CONTENT,
            Kind::Actions => ACTIONS,
        };
        let Ok(mut map) = self.buckets.lock() else {
            return true;
        };
        let b = map.entry((who, k)).or_insert(Bucket {
            tokens: rule.burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rule.per_sec).min(rule.burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn content_bursts_then_refills() {
        let rl = RateLimits::default();
        let p = ParticipantId::from_uuid(uuid::Uuid::from_u128(1));
        let q = ParticipantId::from_uuid(uuid::Uuid::from_u128(2));
        let chat = Command::Chat {
            message_id: uuid::Uuid::from_u128(3).into(),
            text: "x".into(),
        };
        let t0 = Instant::now();
        for _ in 0..5 {
            assert!(rl.allow_at(p, &chat, t0));
        }
        assert!(
            !rl.allow_at(p, &chat, t0),
            "the sixth message in a burst is refused"
        );
        assert!(
            rl.allow_at(q, &chat, t0),
            "another participant is unaffected"
        );
        assert!(
            rl.allow_at(p, &Command::RaiseHand, t0),
            "other actions have their own bucket"
        );
        assert!(
            rl.allow_at(p, &chat, t0 + Duration::from_millis(1100)),
            "a second later one more is allowed"
        );
    }
}
