//! Builds logs for reducer and decide tests: a tiny in-memory session writer.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use protocol::event::SessionSettings;
use protocol::*;
use uuid::Uuid;

pub fn uid<T: From<Uuid>>(n: u128) -> T {
    T::from(Uuid::from_u128(n))
}

pub fn edge() -> EdgeId {
    EdgeId::new("edge-a").unwrap()
}

pub const TEACHER: u128 = 0x7ea;

/// A session log under construction. Ids come from a counter, so every run
/// with the same steps builds the same log.
pub struct Log {
    pub events: Vec<Envelope>,
    pub state: SessionState,
    next_id: u128,
    t0: DateTime<Utc>,
}

impl Log {
    pub fn start() -> Log {
        Self::start_with(SessionSettings::default())
    }

    pub fn start_with(settings: SessionSettings) -> Log {
        let t0 = DateTime::from_timestamp(1_750_000_000, 0).unwrap();
        let first = Envelope {
            event_id: uid(1_000_000),
            tenant_id: uid(1),
            session_id: uid(2),
            seq: Seq(1),
            occurred_at: t0,
            actor: teacher_actor(None),
            source: Source::Edge(edge()),
            v: EVENT_SCHEMA_VERSION,
            body: EventBody::SessionStarted {
                lesson_run_id: uid(3),
                course_id: uid(4),
                lesson_id: uid(5),
                title: "Photosynthesis".into(),
                edge_id: edge(),
                started_by: uid(TEACHER),
                settings,
            },
        };
        let state = SessionState::genesis(&first).unwrap();
        Log {
            events: vec![first],
            state,
            next_id: 2_000_000,
            t0,
        }
    }

    pub fn fresh<T: From<Uuid>>(&mut self) -> T {
        self.next_id += 1;
        uid(self.next_id)
    }

    /// Runs a command through `decide`; appends and applies what it returns.
    pub fn run(&mut self, actor: &Actor, cmd: Command) -> Result<Vec<Envelope>, Rejection> {
        let bodies = decide(&self.state, actor, &cmd)?;
        let mut out = Vec::new();
        for body in bodies {
            let ev = Envelope {
                event_id: self.fresh(),
                tenant_id: self.state.tenant_id,
                session_id: self.state.session_id,
                seq: self.state.seq.next(),
                occurred_at: self.t0 + chrono::Duration::milliseconds(self.events.len() as i64),
                actor: actor.clone(),
                source: Source::Edge(edge()),
                v: EVENT_SCHEMA_VERSION,
                body,
            };
            assert_eq!(self.state.apply(&ev).unwrap(), Applied::Applied);
            self.events.push(ev.clone());
            out.push(ev);
        }
        Ok(out)
    }

    /// Joins a new participant with a role; returns their actor.
    pub fn join(&mut self, n: u128, role: Role) -> Actor {
        let pid: ParticipantId = uid(0x9000 + n);
        let user: UserId = uid(0x8000 + n);
        let actor = Actor::Person {
            user_id: Some(user),
            participant_id: Some(pid),
            role,
        };
        self.run(
            &actor,
            Command::Join {
                participant_id: pid,
                user_id: Some(user),
                role,
                display_name: format!("{role} {n}"),
                edge_id: edge(),
            },
        )
        .unwrap();
        actor
    }
}

pub fn teacher_actor(pid: Option<ParticipantId>) -> Actor {
    Actor::Person {
        user_id: Some(uid(TEACHER)),
        participant_id: pid,
        role: Role::Teacher,
    }
}

pub fn pid_of(actor: &Actor) -> ParticipantId {
    actor.participant_id().unwrap()
}
