//! Per-participant rate limits (token buckets): a chat flood from one
//! client gets 429s and never slows the class for anyone else.
//!
//! The session's writer applies them (`runtime::session`), so a command
//! meets the same limit whether it came to this edge's HTTP API or through
//! core over NATS. The key is the participant's seat, or the user when a
//! forwarded command names no seat.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use protocol::Command;
use uuid::Uuid;

#[derive(Clone, Copy)]
struct Rule {
    burst: f64,
    per_sec: f64,
}

/// Text that lands in front of everyone: chat, questions (a refused one
/// counts too: a flood of bad input is still a flood).
const CONTENT: Rule = Rule {
    burst: 8.0,
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
    buckets: Arc<Mutex<HashMap<(Uuid, Kind), Bucket>>>,
    off: bool,
}

impl RateLimits {
    pub fn new(enabled: bool) -> Self {
        RateLimits {
            buckets: Default::default(),
            off: !enabled,
        }
    }

    /// Takes a token for `who`'s `cmd`; `Err(secs)`: refused, a token is
    /// back in `secs` whole seconds.
    pub fn check(&self, who: Uuid, cmd: &Command) -> Result<(), u32> {
        if self.off {
            return Ok(());
        }
        self.check_at(who, cmd, Instant::now())
    }

    fn check_at(&self, who: Uuid, cmd: &Command, now: Instant) -> Result<(), u32> {
        let k = kind(cmd);
        let rule = match k {
            Kind::Content => CONTENT,
            Kind::Actions => ACTIONS,
        };
        let Ok(mut map) = self.buckets.lock() else {
            return Ok(());
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
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rule.per_sec).ceil().max(1.0) as u32)
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
        let p = Uuid::from_u128(1);
        let q = Uuid::from_u128(2);
        let chat = Command::Chat {
            message_id: uuid::Uuid::from_u128(3).into(),
            text: "x".into(),
        };
        let t0 = Instant::now();
        for _ in 0..8 {
            assert_eq!(rl.check_at(p, &chat, t0), Ok(()));
        }
        assert_eq!(
            rl.check_at(p, &chat, t0),
            Err(1),
            "the ninth message in a burst is refused, back in a second"
        );
        assert_eq!(
            rl.check_at(q, &chat, t0),
            Ok(()),
            "another participant is unaffected"
        );
        assert_eq!(
            rl.check_at(p, &Command::RaiseHand, t0),
            Ok(()),
            "other actions have their own bucket"
        );
        assert_eq!(
            rl.check_at(p, &chat, t0 + Duration::from_millis(1100)),
            Ok(()),
            "a second later one more is allowed"
        );
    }
}
