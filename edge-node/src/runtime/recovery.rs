//! What an edge does with each class in its event log when it starts
//! again, decided without I/O: the registry reads the log, asks [`judge`]
//! for every session and carries the verdicts out (spawning writers,
//! re-arming recorders).

use protocol::state::{RecordingStatus, SessionState};
use protocol::{Envelope, fold};

/// One session's fate after a restart.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Still live: its writer starts again from this state; `rearm` when a
    /// recording was running (the recorder re-arms, the gap is logged).
    Resume {
        state: Box<SessionState>,
        rearm: bool,
    },
    /// The class ended before the restart: nothing to run.
    Ended,
    /// The log does not fold (a gap, a conflict, a foreign event): the class
    /// is not resumed and the reason is reported.
    Unreadable(String),
}

/// The verdict for one session's events, in log order.
pub(crate) fn judge(events: &[Envelope]) -> Verdict {
    let state = match fold(events) {
        Ok(s) => s,
        Err(e) => return Verdict::Unreadable(e.to_string()),
    };
    if !state.is_live() {
        return Verdict::Ended;
    }
    let rearm = state.recording.status == RecordingStatus::Armed;
    Verdict::Resume {
        state: Box::new(state),
        rearm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use protocol::event::{EndReason, SessionSettings, Source};
    use protocol::*;
    use uuid::Uuid;

    fn id<T: From<Uuid>>(n: u128) -> T {
        T::from(Uuid::from_u128(n))
    }

    /// A class's log: `session.started`, then `bodies` at seq 2, 3, ...
    fn log(bodies: Vec<EventBody>) -> Vec<Envelope> {
        let edge = EdgeId::new("edge-a").unwrap();
        let at = DateTime::from_timestamp(1_750_000_000, 0).unwrap();
        let start = EventBody::SessionStarted {
            lesson_run_id: id(4),
            course_id: id(5),
            lesson_id: id(6),
            title: "Waves".into(),
            edge_id: edge.clone(),
            started_by: id(7),
            settings: SessionSettings::default(),
        };
        std::iter::once(start)
            .chain(bodies)
            .enumerate()
            .map(|(i, body)| Envelope {
                event_id: id(0x1_0000 + i as u128),
                tenant_id: id(2),
                session_id: id(3),
                seq: Seq(i as u64 + 1),
                occurred_at: at,
                actor: Actor::System,
                source: Source::Edge(edge.clone()),
                v: EVENT_SCHEMA_VERSION,
                body,
            })
            .collect()
    }

    fn armed() -> EventBody {
        EventBody::RecordingArmed {
            started_at: DateTime::from_timestamp(1_750_000_001, 0).unwrap(),
            offset_ms: 0,
        }
    }

    #[test]
    fn a_live_class_resumes_and_rearms_only_a_running_recording() {
        match judge(&log(vec![])) {
            Verdict::Resume { state, rearm } => {
                assert_eq!(state.seq, Seq(1));
                assert!(!rearm);
            }
            other => panic!("{other:?}"),
        }
        match judge(&log(vec![armed()])) {
            Verdict::Resume { rearm, .. } => assert!(rearm),
            other => panic!("{other:?}"),
        }
        let finalized = EventBody::RecordingFinalized {
            duration_ms: 1000,
            segments: 1,
            manifest_key: "m".into(),
        };
        match judge(&log(vec![armed(), finalized])) {
            Verdict::Resume { rearm, .. } => assert!(!rearm, "a finalized recording stays so"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_ended_class_stays_ended_and_a_broken_log_is_not_resumed() {
        let ended = EventBody::SessionEnded {
            reason: EndReason::Ended,
        };
        assert!(matches!(judge(&log(vec![armed(), ended])), Verdict::Ended));
        // a hole in the log: seq 2 is missing
        let mut holed = log(vec![armed(), armed()]);
        holed.remove(1);
        assert!(matches!(judge(&holed), Verdict::Unreadable(_)), "a gap");
        assert!(matches!(judge(&[]), Verdict::Unreadable(_)), "empty");
        // a log that does not open with session.started
        let headless = log(vec![armed()]).split_off(1);
        assert!(matches!(judge(&headless), Verdict::Unreadable(_)));
    }

    #[test]
    fn a_class_of_more_than_twenty_thousand_events_resumes_where_it_was() {
        let bodies: Vec<EventBody> = (0..20_001)
            .map(|n| EventBody::RecordingGap {
                from_ms: n,
                to_ms: n + 1,
                reason: "test".into(),
            })
            .collect();
        match judge(&log(bodies)) {
            Verdict::Resume { state, rearm } => {
                assert_eq!(state.seq, Seq(20_002));
                assert!(!rearm);
            }
            other => panic!("{other:?}"),
        }
    }
}
