//! The writer's group commit, without I/O: [`plan`] decides a batch of
//! commands against a copy of the state (each against the state the
//! earlier ones left), numbering their events; the writer appends them in
//! one write and only then takes the planned state ([`Planned::state`]).
//! [`settle`] answers each command from what became durable: all of a
//! command's events, or a failure; a rejection is answered as such.
//!
//! Time, event ids and the rate limiter are passed in, so every rule here
//! is tested with plain data.

use std::collections::HashSet;
use std::ops::Range;

use chrono::{DateTime, Utc};
use protocol::command::Rejection;
use protocol::control::EdgeReply;
use protocol::state::{Participant, SessionState};
use protocol::*;

/// How one command of a batch came out.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Rejected(Rejection),
    /// Its events are `events[range]` of the batch (possibly none).
    Decided {
        range: Range<usize>,
        seq: Seq,
        participant: Option<Participant>,
    },
}

/// A decided batch, not yet durable.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    /// The state once every event is applied; the writer takes it only
    /// after the append.
    pub state: SessionState,
    pub events: Vec<Envelope>,
    /// One per command, in order.
    pub outcomes: Vec<Outcome>,
}

/// Decides `commands` in order against `state`. `limited` says whether a
/// command is over its caller's rate limit (seconds to wait); `event_id`
/// names each new event. Rejections consume no `seq`.
pub(crate) fn plan(
    state: &SessionState,
    edge: &EdgeId,
    now: DateTime<Utc>,
    commands: Vec<(Actor, Command)>,
    mut limited: impl FnMut(&Actor, &Command) -> Option<u32>,
    mut event_id: impl FnMut() -> EventId,
) -> Planned {
    let mut state = state.clone();
    let mut events: Vec<Envelope> = Vec::new();
    let mut outcomes = Vec::with_capacity(commands.len());
    for (actor, command) in commands {
        let actor = resolve(&state, actor);
        let decision = match limited(&actor, &command) {
            Some(secs) => Err(Rejection::rate_limited(secs)),
            None => decide(&state, &actor, &command),
        };
        match decision {
            Err(rejection) => outcomes.push(Outcome::Rejected(rejection)),
            Ok(bodies) => {
                let start = events.len();
                for body in bodies {
                    let ev = Envelope {
                        event_id: event_id(),
                        tenant_id: state.tenant_id,
                        session_id: state.session_id,
                        seq: state.seq.next(),
                        occurred_at: now,
                        actor: actor.clone(),
                        source: Source::Edge(edge.clone()),
                        v: EVENT_SCHEMA_VERSION,
                        body,
                    };
                    if let Err(e) = state.apply(&ev) {
                        // decide() produced it for this very state: cannot happen.
                        tracing::error!(error = %e, "decided event does not fold");
                    }
                    events.push(ev);
                }
                let participant = target_participant(&state, &actor, &command);
                outcomes.push(Outcome::Decided {
                    range: start..events.len(),
                    seq: state.seq,
                    participant,
                });
            }
        }
    }
    Planned {
        state,
        events,
        outcomes,
    }
}

/// The answer to each command. `durable`: None when the append succeeded;
/// after a failed one, the ids of the batch's events the log holds anyway
/// (`error` says why the rest did not land).
pub(crate) fn settle(
    outcomes: Vec<Outcome>,
    events: &[Envelope],
    durable: Option<&HashSet<EventId>>,
    error: &str,
) -> Vec<EdgeReply> {
    outcomes
        .into_iter()
        .map(|outcome| match (outcome, durable) {
            (Outcome::Rejected(rejection), _) => EdgeReply::Rejected { rejection },
            (decided, None) => answer(decided, events),
            (
                Outcome::Decided {
                    range,
                    seq,
                    participant,
                },
                Some(durable),
            ) => {
                let landed = !range.is_empty()
                    && events[range.clone()]
                        .iter()
                        .all(|ev| durable.contains(&ev.event_id));
                if landed {
                    answer(
                        Outcome::Decided {
                            range,
                            seq,
                            participant,
                        },
                        events,
                    )
                } else {
                    EdgeReply::Failed {
                        code: "event_log_unavailable".into(),
                        message: error.to_owned(),
                    }
                }
            }
        })
        .collect()
}

fn answer(outcome: Outcome, events: &[Envelope]) -> EdgeReply {
    match outcome {
        Outcome::Rejected(rejection) => EdgeReply::Rejected { rejection },
        Outcome::Decided {
            range,
            seq,
            participant,
        } => EdgeReply::Done {
            events: events[range].to_vec(),
            seq,
            participant,
        },
    }
}

/// Fills in the caller's seat from the state when only the user is known
/// (commands forwarded by core).
fn resolve(state: &SessionState, actor: Actor) -> Actor {
    match actor {
        Actor::Person {
            user_id: Some(uid),
            participant_id: None,
            role,
        } => {
            let seat = state
                .participants
                .values()
                .filter(|p| p.user_id == Some(uid))
                .max_by_key(|p| (p.present, p.joined_seq))
                .map(|p| p.participant_id);
            Actor::Person {
                user_id: Some(uid),
                participant_id: seat,
                role,
            }
        }
        other => other,
    }
}

fn target_participant(
    state: &SessionState,
    actor: &Actor,
    command: &Command,
) -> Option<Participant> {
    let id = match command {
        Command::Join { participant_id, .. }
        | Command::ChangePermissions { participant_id, .. }
        | Command::Leave { participant_id, .. } => Some(*participant_id),
        _ => actor.participant_id(),
    }?;
    state.participant(id).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::event::SessionSettings;
    use uuid::Uuid;

    fn id<T: From<Uuid>>(n: u128) -> T {
        T::from(Uuid::from_u128(n))
    }

    fn edge() -> EdgeId {
        EdgeId::new("edge-a".to_owned()).unwrap()
    }

    fn genesis() -> Envelope {
        Envelope {
            event_id: id(1),
            tenant_id: id(2),
            session_id: id(3),
            seq: Seq(1),
            occurred_at: DateTime::from_timestamp(1_750_000_000, 0).unwrap(),
            actor: Actor::System,
            source: Source::Edge(edge()),
            v: EVENT_SCHEMA_VERSION,
            body: EventBody::SessionStarted {
                lesson_run_id: id(4),
                course_id: id(5),
                lesson_id: id(6),
                title: "Acids".into(),
                edge_id: edge(),
                started_by: id(7),
                settings: SessionSettings::default(),
            },
        }
    }

    fn started() -> SessionState {
        SessionState::genesis(&genesis()).unwrap()
    }

    fn student(n: u128) -> (Actor, Command) {
        let (pid, uid): (ParticipantId, UserId) = (id(0x900 + n), id(0x800 + n));
        (
            Actor::Person {
                user_id: Some(uid),
                participant_id: Some(pid),
                role: Role::Student,
            },
            Command::Join {
                participant_id: pid,
                user_id: Some(uid),
                role: Role::Student,
                display_name: format!("Student {n}"),
                edge_id: edge(),
            },
        )
    }

    fn chat(actor: &Actor, n: u128, text: &str) -> (Actor, Command) {
        (
            actor.clone(),
            Command::Chat {
                message_id: id(0x500 + n),
                text: text.into(),
            },
        )
    }

    fn ids() -> impl FnMut() -> EventId {
        let mut n = 1000u128;
        move || {
            n += 1;
            id(n)
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_750_000_100, 0).unwrap()
    }

    #[test]
    fn each_command_sees_the_ones_before_it_and_rejections_take_no_seq() {
        let state = started();
        let (who, join) = student(1);
        // a forwarded command names only the user: the seat is found in
        // the state the join before it left
        let by_user = Actor::Person {
            user_id: who.user_id(),
            participant_id: None,
            role: Role::Student,
        };
        let stranger = student(2).0;
        let batch = vec![
            (who.clone(), join),
            chat(&by_user, 1, "hello"),
            chat(&stranger, 2, "not seated"),
            chat(&who, 3, "again"),
        ];
        let p = plan(&state, &edge(), now(), batch, |_, _| None, ids());
        assert_eq!(state.seq, Seq(1), "the writer's state is untouched");
        let seqs: Vec<u64> = p.events.iter().map(|e| e.seq.0).collect();
        assert_eq!(seqs, (2..2 + seqs.len() as u64).collect::<Vec<_>>());
        assert!(matches!(p.outcomes[0], Outcome::Decided { ref range, .. } if !range.is_empty()));
        assert!(
            matches!(p.outcomes[1], Outcome::Decided { ref range, .. } if range.len() == 1),
            "{:?}",
            p.outcomes[1]
        );
        assert!(
            matches!(p.outcomes[2], Outcome::Rejected(_)),
            "{:?}",
            p.outcomes[2]
        );
        let Outcome::Decided { seq, .. } = &p.outcomes[3] else {
            panic!("{:?}", p.outcomes[3]);
        };
        assert_eq!(
            *seq, p.state.seq,
            "the last command ends at the batch's seq"
        );
        assert_eq!(p.events.last().unwrap().seq, p.state.seq);
        // the join answers with the seat it made
        let Outcome::Decided { participant, .. } = &p.outcomes[0] else {
            unreachable!()
        };
        assert_eq!(
            participant.as_ref().map(|x| x.participant_id),
            who.participant_id()
        );
    }

    #[test]
    fn the_rate_limiter_is_asked_per_command_after_the_seat_is_known() {
        let state = started();
        let (who, join) = student(1);
        let mut asked = Vec::new();
        let batch = vec![(who.clone(), join), chat(&who, 1, "a"), chat(&who, 2, "b")];
        let p = plan(
            &state,
            &edge(),
            now(),
            batch,
            |a, c| {
                asked.push((a.participant_id(), c.name()));
                (c.name() == "chat" && asked.len() == 3).then_some(7)
            },
            ids(),
        );
        assert_eq!(asked.len(), 3);
        assert!(matches!(
            &p.outcomes[2],
            Outcome::Rejected(r) if r.retry_after_secs == Some(7)
        ));
    }

    #[test]
    fn after_a_failed_append_only_commands_whose_events_all_landed_succeed() {
        let state = started();
        let (who, join) = student(1);
        let p = plan(
            &state,
            &edge(),
            now(),
            vec![
                (who.clone(), join),
                chat(&who, 1, "a"),
                chat(&student(9).0, 2, "b"),
            ],
            |_, _| None,
            ids(),
        );
        let Outcome::Decided { range: joined, .. } = p.outcomes[0].clone() else {
            panic!()
        };
        // the log took the join's events and not the chat's
        let durable: HashSet<EventId> = p.events[joined].iter().map(|e| e.event_id).collect();
        let replies = settle(p.outcomes.clone(), &p.events, Some(&durable), "disk full");
        assert!(matches!(replies[0], EdgeReply::Done { .. }));
        assert!(
            matches!(&replies[1], EdgeReply::Failed { code, message } if code == "event_log_unavailable" && message == "disk full")
        );
        assert!(matches!(replies[2], EdgeReply::Rejected { .. }));
        // a successful append answers every decided command with its events
        let ok = settle(p.outcomes, &p.events, None, "");
        let EdgeReply::Done { events, .. } = &ok[1] else {
            panic!("{:?}", ok[1]);
        };
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_type(), "chat.message");
    }

    #[test]
    fn recovery_folds_a_long_class_back_to_the_same_state() {
        // a class of 20,001 events (a join, then chat) planned in batches,
        // folded back from the log as a restarted edge does
        let mut state = started();
        let mut log = Vec::new();
        let (who, join) = student(1);
        let mut next = ids();
        let p = plan(
            &state,
            &edge(),
            now(),
            vec![(who.clone(), join)],
            |_, _| None,
            &mut next,
        );
        state = p.state;
        log.extend(p.events);
        let mut n = 0u128;
        while log.len() < 20_001 {
            let batch = (0..64)
                .map(|_| {
                    n += 1;
                    chat(&who, n, "x")
                })
                .collect();
            let p = plan(&state, &edge(), now(), batch, |_, _| None, &mut next);
            assert!(
                p.outcomes
                    .iter()
                    .all(|o| matches!(o, Outcome::Decided { .. }))
            );
            state = p.state;
            log.extend(p.events);
        }
        log.insert(0, genesis());
        let folded = protocol::fold(&log).unwrap();
        assert_eq!(folded, state, "the log folds to the writer's state");
        assert_eq!(state.seq.0 as usize, log.len());
    }
}
