//! The edge's media policy, in one pure module: who may publish what, who
//! may watch, whose media a class event cuts, what each viewer is sent,
//! whose tracks go into the recording, what a far edge pulls and cuts, when
//! a media connection or an absent participant is given up, and which
//! connection makes room for a new one.
//!
//! Every rule reads the class's state (or an event) and plain values and
//! answers; nothing here does I/O or reads a clock: time comes in as an
//! explicit `now`. The WHIP/WHEP routes, the SFU driver, the far-edge bridge
//! and the recorder ask these functions instead of deciding for themselves,
//! so one rule is written once and unit-tested here.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use protocol::event::{KillSwitch, LeaveReason, TrackSource};
use protocol::state::{Participant, SessionState};
use protocol::subjects::{moq_source_track_name, program_audio_track_name, program_track_name};
use protocol::{EventBody, ParticipantId, Permission, Role, SessionId, TenantId};

/// Why a participant may not have what they asked for. Each maps to one
/// api.md error code (`code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No seat in the class.
    NotJoined,
    /// A moderator removed them.
    Removed,
    /// A screen share while the class is in exam mode.
    ExamMode,
    /// A moderator switched their media off (kill switch).
    MediaDisabled,
    /// The offer sends neither audio nor video.
    NothingOffered,
    /// The permission publishing this needs.
    MissingPermission(Permission),
    /// A public viewer while the class does not allow public viewing.
    PublicViewingOff,
}

impl Refusal {
    /// The api.md error code.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Refusal::NotJoined => "not_joined",
            Refusal::Removed => "removed",
            Refusal::ExamMode => "exam_mode",
            Refusal::MediaDisabled => "media_disabled",
            Refusal::NothingOffered => "invalid_sdp",
            Refusal::MissingPermission(_) => "missing_permission",
            Refusal::PublicViewingOff => "public_viewing_off",
        }
    }

    /// The message for people.
    pub(crate) fn message(self) -> String {
        match self {
            Refusal::NotJoined => "join the session first".into(),
            Refusal::Removed => "you were removed from this session".into(),
            Refusal::ExamMode => "screen sharing is restricted in exam mode".into(),
            Refusal::MediaDisabled => "a moderator switched your media off".into(),
            Refusal::NothingOffered => "the offer sends no audio or video".into(),
            Refusal::MissingPermission(p) => format!("publishing this needs the {p} permission"),
            Refusal::PublicViewingOff => "public viewing is not allowed for this class".into(),
        }
    }
}

/// What a publisher offers: the source and the media kinds its SDP sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Offer {
    pub source: TrackSource,
    pub audio: bool,
    pub video: bool,
}

/// The participant's seat, if they hold one and were not removed.
pub(crate) fn seated(state: &SessionState, who: ParticipantId) -> Result<&Participant, Refusal> {
    let p = state.participant(who).ok_or(Refusal::NotJoined)?;
    if p.removed {
        return Err(Refusal::Removed);
    }
    Ok(p)
}

/// Whether `who` may publish `offer` now. In order: a seat, exam mode for
/// screens, the media kill switch, something offered, then the permission
/// each kind needs (video `present`, audio `speak`, a screen
/// `screen_share`).
pub(crate) fn may_publish(
    state: &SessionState,
    who: ParticipantId,
    offer: Offer,
) -> Result<(), Refusal> {
    let p = seated(state, who)?;
    if offer.source == TrackSource::Screen && state.exam_mode {
        return Err(Refusal::ExamMode);
    }
    if state.kill_switches.media.contains(&who) {
        return Err(Refusal::MediaDisabled);
    }
    if !offer.audio && !offer.video {
        return Err(Refusal::NothingOffered);
    }
    let mut need = Vec::new();
    if offer.source == TrackSource::Screen {
        need.push(Permission::ScreenShare);
    } else {
        if offer.video {
            need.push(Permission::Present);
        }
        if offer.audio {
            need.push(Permission::Speak);
        }
    }
    match need.into_iter().find(|n| !p.permissions.contains(n)) {
        Some(missing) => Err(Refusal::MissingPermission(missing)),
        None => Ok(()),
    }
}

/// Whether someone may watch a class hosted here: a seat for participants,
/// public viewing switched on for public viewers.
pub(crate) fn may_watch(
    state: &SessionState,
    role: Role,
    who: ParticipantId,
) -> Result<(), Refusal> {
    if role == Role::Public {
        return match state.settings.public_viewing {
            true => Ok(()),
            false => Err(Refusal::PublicViewingOff),
        };
    }
    seated(state, who).map(|_| ())
}

/// Media a class event cuts at once on the edge that hosts the class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Every connection of the class (it ended, or its writer stopped).
    Everyone,
    /// One participant's connections; only what they publish when
    /// `publishers_only`.
    Participant {
        participant: ParticipantId,
        publishers_only: bool,
    },
    /// Every connection of one role (public viewers when public viewing is
    /// switched off).
    Role(Role),
}

/// What `event` cuts: a revoked publishing permission or a media kill
/// switch cuts what the participant publishes; a removal cuts all their
/// media; the end of the class cuts everyone.
pub(crate) fn cut_for(event: &EventBody) -> Option<Cut> {
    match event {
        EventBody::PermissionChanged {
            participant_id,
            revoked,
            ..
        } if revoked.iter().any(|p| p.allows_publishing()) => Some(Cut::Participant {
            participant: *participant_id,
            publishers_only: true,
        }),
        EventBody::KillSwitchChanged {
            switch: KillSwitch::Media { participant_id },
            engaged: true,
        } => Some(Cut::Participant {
            participant: *participant_id,
            publishers_only: true,
        }),
        EventBody::ParticipantLeft {
            participant_id,
            reason: LeaveReason::Removed,
        } => Some(Cut::Participant {
            participant: *participant_id,
            publishers_only: false,
        }),
        EventBody::SessionEnded { .. } => Some(Cut::Everyone),
        _ => None,
    }
}

/// Whether a viewer of `role` is sent a track: public viewers see the
/// program (the composed class) only; everyone else sees the participants'
/// own tracks and never the program.
pub(crate) fn sees(role: Role, program: bool) -> bool {
    (role == Role::Public) == program
}

/// Whether a participant's tracks go into the recording: they consent and
/// were not removed. Tracks of someone not (yet) in the state wait.
pub(crate) fn recorded(state: &SessionState, who: ParticipantId) -> bool {
    state
        .participants
        .get(&who)
        .is_some_and(|p| p.recording_consent && !p.removed)
}

/// Whether a participant's media goes into the public program (what a
/// public destination streams to anyone): the class's staff who consent to
/// recording. No student's camera, voice or screen is ever in it.
pub(crate) fn in_public_program(state: &SessionState, who: ParticipantId) -> bool {
    recorded(state, who)
        && state
            .participants
            .get(&who)
            .is_some_and(|p| p.role.is_staff())
}

/// A far edge's audience for one class hosted elsewhere.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct FarAudience {
    pub seated: u32,
    pub public: u32,
}

/// What a far edge does for one class after reading the home edge's state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct FarPlan {
    /// Connections to close here.
    pub cuts: Vec<Cut>,
    /// Relay tracks to pull, by name: whose and which source.
    pub pull: HashMap<String, (ParticipantId, TrackSource)>,
}

/// The stand-in publisher of the program in an SFU (no participant sends
/// it).
pub(crate) fn program_participant() -> ParticipantId {
    ParticipantId::from_uuid(uuid::Uuid::nil())
}

/// The far-edge rules, from the home edge's state: an ended class ends for
/// everyone here (and nothing is pulled); removed students are cut; public
/// viewers are cut when public viewing is off; public viewers get the
/// program, seated students every participant track.
pub(crate) fn far_edge(
    state: &SessionState,
    tenant: TenantId,
    session: SessionId,
    audience: FarAudience,
) -> FarPlan {
    let mut plan = FarPlan::default();
    if !state.is_live() {
        plan.cuts.push(Cut::Everyone);
        return plan;
    }
    plan.cuts.extend(
        state
            .participants
            .values()
            .filter(|p| p.removed)
            .map(|p| Cut::Participant {
                participant: p.participant_id,
                publishers_only: false,
            }),
    );
    if !state.settings.public_viewing && audience.public > 0 {
        plan.cuts.push(Cut::Role(Role::Public));
    }
    if audience.public > 0 && state.settings.public_viewing {
        for name in [
            program_track_name(tenant, session),
            program_audio_track_name(tenant, session),
        ] {
            plan.pull
                .insert(name, (program_participant(), TrackSource::Program));
        }
    }
    if audience.seated > 0 {
        plan.pull.extend(
            state
                .tracks
                .values()
                .filter(|t| t.source != TrackSource::Program)
                .filter(|t| seated(state, t.participant_id).is_ok())
                .map(|t| {
                    let name = moq_source_track_name(tenant, session, t.participant_id, t.source);
                    (name, (t.participant_id, t.source))
                }),
        );
    }
    plan
}

/// A media connection's life so far.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerLife {
    pub created: Instant,
    pub connected: bool,
    pub disconnected_since: Option<Instant>,
    pub last_rx: Instant,
    /// The WebRTC stack still runs.
    pub alive: bool,
}

/// How long a connection may take to connect, stay disconnected, or stay
/// silent.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerTimers {
    pub connect_timeout: Duration,
    pub grace: Duration,
    pub idle: Duration,
}

/// Why a connection is given up at `now`, if it is.
pub(crate) fn give_up(p: &PeerLife, t: &PeerTimers, now: Instant) -> Option<&'static str> {
    let since = |at: Instant| now.saturating_duration_since(at);
    if !p.connected && since(p.created) > t.connect_timeout {
        Some("never connected")
    } else if p.disconnected_since.is_some_and(|d| since(d) > t.grace) {
        Some("disconnected")
    } else if p.connected && since(p.last_rx) > t.idle {
        Some("silent")
    } else if !p.alive {
        Some("closed")
    } else {
        None
    }
}

/// Whether a participant whose last connection dropped at `since` has left
/// the class by `now` (a reconnect within the grace keeps the seat).
pub(crate) fn has_left(since: Instant, grace: Duration, now: Instant) -> bool {
    now.saturating_duration_since(since) > grace
}

/// The connections that make room for one more when a participant holds
/// `mine` (each with when it was made) against a cap: the oldest go.
pub(crate) fn to_replace<T: Copy>(mine: &[(Instant, T)], cap: usize) -> Vec<T> {
    if mine.len() < cap {
        return Vec::new();
    }
    let mut by_age: Vec<(Instant, T)> = mine.to_vec();
    by_age.sort_by_key(|(created, _)| *created);
    by_age
        .iter()
        .take(mine.len() + 1 - cap)
        .map(|(_, t)| *t)
        .collect()
}

/// Whether one more public viewer fits a class that has `viewers`.
pub(crate) fn public_full(viewers: usize, max: u32) -> bool {
    viewers >= max as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::state::Track;
    use protocol::{EdgeId, TrackId};
    use std::collections::BTreeSet;

    fn id<T: From<uuid::Uuid>>(n: u128) -> T {
        T::from(uuid::Uuid::from_u128(n))
    }

    fn class() -> (SessionState, ParticipantId, ParticipantId) {
        let edge = EdgeId::new("edge-a").unwrap();
        let genesis = protocol::Envelope {
            event_id: id(1),
            tenant_id: id(2),
            session_id: id(3),
            seq: protocol::Seq(1),
            occurred_at: chrono::DateTime::from_timestamp(1_750_000_000, 0).unwrap(),
            actor: protocol::Actor::System,
            source: protocol::event::Source::Edge(edge.clone()),
            v: protocol::event::EVENT_SCHEMA_VERSION,
            body: EventBody::SessionStarted {
                lesson_run_id: id(4),
                course_id: id(5),
                lesson_id: id(6),
                title: "Optics".into(),
                edge_id: edge,
                started_by: id(7),
                settings: protocol::event::SessionSettings::default(),
            },
        };
        let mut s = SessionState::genesis(&genesis).unwrap();
        let teacher: ParticipantId = id(10);
        let student: ParticipantId = id(11);
        for (id, role, perms) in [
            (
                teacher,
                Role::Teacher,
                BTreeSet::from([
                    Permission::Present,
                    Permission::Speak,
                    Permission::ScreenShare,
                ]),
            ),
            (student, Role::Student, BTreeSet::new()),
        ] {
            s.participants.insert(
                id,
                Participant {
                    participant_id: id,
                    user_id: None,
                    role,
                    display_name: format!("{role:?}"),
                    edge_id: EdgeId::new("edge-a").unwrap(),
                    permissions: perms,
                    present: true,
                    removed: false,
                    hand_raised: false,
                    audio_muted: false,
                    video_muted: false,
                    recording_consent: true,
                    joined_seq: protocol::Seq(1),
                },
            );
        }
        (s, teacher, student)
    }

    fn offer(source: TrackSource, audio: bool, video: bool) -> Offer {
        Offer {
            source,
            audio,
            video,
        }
    }

    #[test]
    fn publishing_needs_a_seat_and_the_permission_of_each_kind() {
        let (mut s, teacher, student) = class();
        let cam = offer(TrackSource::Camera, true, true);
        assert_eq!(may_publish(&s, teacher, cam), Ok(()));
        assert_eq!(
            may_publish(&s, id::<ParticipantId>(99), cam),
            Err(Refusal::NotJoined)
        );
        // audio asks `speak` before `present` only when video is absent
        assert_eq!(
            may_publish(&s, student, cam),
            Err(Refusal::MissingPermission(Permission::Present))
        );
        assert_eq!(
            may_publish(&s, student, offer(TrackSource::Camera, true, false)),
            Err(Refusal::MissingPermission(Permission::Speak))
        );
        s.participants
            .get_mut(&student)
            .unwrap()
            .permissions
            .insert(Permission::Speak);
        assert_eq!(
            may_publish(&s, student, offer(TrackSource::Camera, true, false)),
            Ok(())
        );
        // a screen needs screen_share, whatever it carries
        assert_eq!(
            may_publish(&s, student, offer(TrackSource::Screen, false, true)),
            Err(Refusal::MissingPermission(Permission::ScreenShare))
        );
        assert_eq!(
            may_publish(&s, teacher, offer(TrackSource::Camera, false, false)),
            Err(Refusal::NothingOffered)
        );
        s.participants.get_mut(&student).unwrap().removed = true;
        assert_eq!(
            may_publish(&s, student, offer(TrackSource::Camera, true, false)),
            Err(Refusal::Removed)
        );
    }

    #[test]
    fn exam_mode_and_the_kill_switch_come_before_permissions() {
        let (mut s, teacher, _) = class();
        s.exam_mode = true;
        let screen = offer(TrackSource::Screen, false, true);
        assert_eq!(may_publish(&s, teacher, screen), Err(Refusal::ExamMode));
        // the camera is not a screen: exam mode lets it through
        let cam = offer(TrackSource::Camera, true, true);
        assert_eq!(may_publish(&s, teacher, cam), Ok(()));
        s.kill_switches.media.insert(teacher);
        assert_eq!(may_publish(&s, teacher, cam), Err(Refusal::MediaDisabled));
        // nothing offered is still refused as media disabled first
        assert_eq!(
            may_publish(&s, teacher, offer(TrackSource::Camera, false, false)),
            Err(Refusal::MediaDisabled)
        );
        assert_eq!(Refusal::ExamMode.code(), "exam_mode");
        assert!(
            Refusal::MissingPermission(Permission::Speak)
                .message()
                .contains("speak")
        );
    }

    #[test]
    fn watching_needs_a_seat_or_public_viewing() {
        let (mut s, _, student) = class();
        assert_eq!(may_watch(&s, Role::Student, student), Ok(()));
        assert_eq!(
            may_watch(&s, Role::Student, id::<ParticipantId>(99)),
            Err(Refusal::NotJoined)
        );
        let anyone = id::<ParticipantId>(99);
        s.settings.public_viewing = false;
        assert_eq!(
            may_watch(&s, Role::Public, anyone),
            Err(Refusal::PublicViewingOff)
        );
        s.settings.public_viewing = true;
        assert_eq!(may_watch(&s, Role::Public, anyone), Ok(()));
    }

    #[test]
    fn events_cut_what_they_must_and_nothing_else() {
        let p = id::<ParticipantId>(99);
        let revoke = |revoked: Vec<Permission>| EventBody::PermissionChanged {
            participant_id: p,
            granted: BTreeSet::new(),
            revoked: revoked.into_iter().collect(),
            permissions: BTreeSet::new(),
        };
        let publishers = Some(Cut::Participant {
            participant: p,
            publishers_only: true,
        });
        assert_eq!(cut_for(&revoke(vec![Permission::Speak])), publishers);
        assert_eq!(cut_for(&revoke(vec![Permission::Chat])), None);
        assert_eq!(
            cut_for(&EventBody::KillSwitchChanged {
                switch: KillSwitch::Media { participant_id: p },
                engaged: true
            }),
            publishers
        );
        assert_eq!(
            cut_for(&EventBody::KillSwitchChanged {
                switch: KillSwitch::Media { participant_id: p },
                engaged: false
            }),
            None
        );
        assert_eq!(
            cut_for(&EventBody::ParticipantLeft {
                participant_id: p,
                reason: LeaveReason::Removed
            }),
            Some(Cut::Participant {
                participant: p,
                publishers_only: false
            })
        );
        assert_eq!(
            cut_for(&EventBody::ParticipantLeft {
                participant_id: p,
                reason: LeaveReason::Left
            }),
            None
        );
    }

    #[test]
    fn public_viewers_see_only_the_program() {
        assert!(sees(Role::Public, true));
        assert!(!sees(Role::Public, false));
        for role in [Role::Student, Role::Teacher, Role::Assistant] {
            assert!(sees(role, false));
            assert!(!sees(role, true));
        }
    }

    #[test]
    fn the_recording_takes_consenting_seated_participants() {
        let (mut s, teacher, student) = class();
        assert!(recorded(&s, teacher));
        s.participants.get_mut(&student).unwrap().recording_consent = false;
        assert!(!recorded(&s, student));
        s.participants.get_mut(&teacher).unwrap().removed = true;
        assert!(!recorded(&s, teacher));
        assert!(!recorded(&s, id::<ParticipantId>(99)));
    }

    #[test]
    fn the_public_program_takes_consenting_staff_only() {
        let (mut s, teacher, student) = class();
        assert!(recorded(&s, student));
        assert!(in_public_program(&s, teacher));
        // a recorded student is still never public
        assert!(!in_public_program(&s, student));
        s.participants.get_mut(&teacher).unwrap().recording_consent = false;
        assert!(!in_public_program(&s, teacher));
        assert!(!in_public_program(&s, id::<ParticipantId>(99)));
    }

    #[test]
    fn a_far_edge_pulls_what_its_audience_needs_and_cuts_the_rest() {
        let (mut s, teacher, student) = class();
        let tenant: TenantId = id(2);
        let session: SessionId = id(3);
        for (who, source) in [
            (teacher, TrackSource::Camera),
            (teacher, TrackSource::Microphone),
            (student, TrackSource::Microphone),
        ] {
            let id: TrackId = id(0x100 + s.tracks.len() as u128);
            s.tracks.insert(
                id,
                Track {
                    track_id: id,
                    participant_id: who,
                    kind: protocol::event::MediaKind::Audio,
                    source,
                    codec: "opus".into(),
                    simulcast: vec![],
                },
            );
        }
        let seated_only = FarAudience {
            seated: 2,
            public: 0,
        };
        let plan = far_edge(&s, tenant, session, seated_only);
        assert!(plan.cuts.is_empty(), "{plan:?}");
        assert_eq!(plan.pull.len(), 3);
        assert!(!plan.pull.values().any(|(p, _)| *p == program_participant()));

        // a removed student is cut here and their tracks are not pulled
        s.participants.get_mut(&student).unwrap().removed = true;
        let plan = far_edge(&s, tenant, session, seated_only);
        assert_eq!(
            plan.cuts,
            vec![Cut::Participant {
                participant: student,
                publishers_only: false
            }]
        );
        assert_eq!(plan.pull.len(), 2);

        // public viewers get the program, and are cut when it is switched off
        let public = FarAudience {
            seated: 0,
            public: 1,
        };
        s.settings.public_viewing = true;
        let plan = far_edge(&s, tenant, session, public);
        assert_eq!(plan.pull.len(), 2);
        assert!(plan.pull.values().all(|(p, _)| *p == program_participant()));
        s.settings.public_viewing = false;
        let plan = far_edge(&s, tenant, session, public);
        assert!(plan.cuts.contains(&Cut::Role(Role::Public)));
        assert!(plan.pull.is_empty());

        // an ended class ends for everyone and nothing is pulled
        s.status = protocol::state::SessionStatus::Ended;
        let plan = far_edge(&s, tenant, session, seated_only);
        assert_eq!(plan.cuts, vec![Cut::Everyone]);
        assert!(plan.pull.is_empty());
    }

    #[test]
    fn connections_are_given_up_by_the_clock_passed_in() {
        let t0 = Instant::now();
        let timers = PeerTimers {
            connect_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(20),
            idle: Duration::from_secs(30),
        };
        let fresh = PeerLife {
            created: t0,
            connected: false,
            disconnected_since: None,
            last_rx: t0,
            alive: true,
        };
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(give_up(&fresh, &timers, at(10)), None);
        assert_eq!(give_up(&fresh, &timers, at(11)), Some("never connected"));
        let up = PeerLife {
            connected: true,
            ..fresh
        };
        assert_eq!(give_up(&up, &timers, at(30)), None);
        assert_eq!(give_up(&up, &timers, at(31)), Some("silent"));
        let down = PeerLife {
            disconnected_since: Some(at(5)),
            last_rx: at(5),
            ..up
        };
        assert_eq!(give_up(&down, &timers, at(25)), None);
        assert_eq!(give_up(&down, &timers, at(26)), Some("disconnected"));
        let closed = PeerLife { alive: false, ..up };
        assert_eq!(give_up(&closed, &timers, t0), Some("closed"));
        // a clock that went backwards gives nothing up
        assert_eq!(give_up(&fresh, &timers, t0 - Duration::from_secs(1)), None);

        assert!(!has_left(at(5), Duration::from_secs(20), at(25)));
        assert!(has_left(at(5), Duration::from_secs(20), at(26)));
    }

    #[test]
    fn the_oldest_connections_make_room_under_a_cap() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mine = [(at(3), 'c'), (at(1), 'a'), (at(2), 'b')];
        assert_eq!(to_replace(&mine, 4), Vec::<char>::new());
        assert_eq!(to_replace(&mine, 3), vec!['a']);
        assert_eq!(to_replace(&mine, 2), vec!['a', 'b']);
        assert_eq!(to_replace(&mine, 1), vec!['a', 'b', 'c']);
        assert!(!public_full(99, 100));
        assert!(public_full(100, 100));
    }
}
