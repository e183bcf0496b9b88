//! The fold: a class's events, in `seq` order, into presence, participation,
//! a per-minute timeline and poll results. Pure and deterministic: the same
//! log gives the same [`Fold`], whether it arrives in one batch, in many,
//! or again from `core analytics rebuild`.
//!
//! What it reads of an event is ids, times and counts, never a personal
//! field (those are stored sealed), so it folds the log as stored.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// One event of a class's log, as the fold sees it.
#[derive(Debug, Clone)]
pub(crate) struct LogEvent {
    pub seq: i64,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub payload: Value,
}

/// A seat's account and role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Seat {
    pub user: Uuid,
    pub role: String,
}

/// One person in one class.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Person {
    pub role: String,
    pub first_join: DateTime<Utc>,
    pub last_leave: Option<DateTime<Utc>>,
    pub present_ms: i64,
    pub open_since: Option<DateTime<Utc>>,
    pub joins: i32,
    /// Declined recording at some point: presence only from then on, and
    /// what they did before is forgotten.
    pub attendance_only: bool,
    pub chat: i32,
    pub questions: i32,
    pub upvotes: i32,
    pub poll_answers: i32,
    pub poll_correct: i32,
    pub hands: i32,
    pub speaking_ms: i64,
    /// Time with a microphone track open (media events: published until
    /// unpublished, muted, left or the class's end).
    #[serde(default)]
    pub mic_ms: i64,
    #[serde(default)]
    pub mic_since: Option<DateTime<Utc>>,
}

/// One minute of the class (anonymous counts).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Minute {
    pub attendee_ms: i64,
    pub chat: i32,
    pub questions: i32,
    pub poll_answers: i32,
    pub hands: i32,
    pub speaking_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Poll {
    pub opened_seq: i64,
    pub opened_at: DateTime<Utc>,
    pub question: String,
    pub options: Vec<String>,
    pub correct_option: Option<i32>,
    /// Each person's last answer: (option, correct?).
    pub answers: BTreeMap<Uuid, (i32, Option<bool>)>,
}

impl Poll {
    pub(crate) fn correct_count(&self) -> i32 {
        self.answers
            .values()
            .filter(|(_, c)| *c == Some(true))
            .count() as i32
    }
}

/// Something an xAPI statement is made of (see `xapi`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Happening {
    Joined {
        user: Uuid,
    },
    Left {
        user: Uuid,
        present_ms: i64,
    },
    Answered {
        user: Uuid,
        poll: Uuid,
        question: String,
        option: i32,
        options: Vec<String>,
        correct: Option<bool>,
    },
    Asked {
        user: Uuid,
    },
}

/// A happening with the event it came from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Noted {
    pub seq: i64,
    pub at: DateTime<Utc>,
    pub what: Happening,
}

/// The fold of one class so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Fold {
    pub tenant_id: Uuid,
    pub session_id: Uuid,
    pub course_id: Uuid,
    pub lesson_id: Uuid,
    pub lesson_run_id: Uuid,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// The last event folded.
    pub last_seq: i64,
    pub events: i64,
    pub seats: BTreeMap<Uuid, Seat>,
    pub people: BTreeMap<Uuid, Person>,
    pub minutes: BTreeMap<i32, Minute>,
    pub polls: BTreeMap<Uuid, Poll>,
    /// Open microphone tracks and whose they are.
    #[serde(default)]
    pub mics: BTreeMap<Uuid, Uuid>,
}

fn id(p: &Value, key: &str) -> Option<Uuid> {
    p.get(key).and_then(Value::as_str)?.parse().ok()
}

fn num(p: &Value, key: &str) -> Option<i64> {
    p.get(key).and_then(Value::as_i64)
}

const MINUTE_MS: i64 = 60_000;

impl Fold {
    /// A fold begun by the class's `session.started` (its first event);
    /// `None` for any other event.
    pub(crate) fn begin(tenant_id: Uuid, session_id: Uuid, first: &LogEvent) -> Option<Fold> {
        if first.event_type != "session.started" {
            return None;
        }
        let p = &first.payload;
        Some(Fold {
            tenant_id,
            session_id,
            course_id: id(p, "course_id")?,
            lesson_id: id(p, "lesson_id")?,
            lesson_run_id: id(p, "lesson_run_id")?,
            started_at: first.occurred_at,
            ended_at: None,
            last_seq: first.seq,
            events: 1,
            seats: BTreeMap::new(),
            people: BTreeMap::new(),
            minutes: BTreeMap::new(),
            polls: BTreeMap::new(),
            mics: BTreeMap::new(),
        })
    }

    fn minute_of(&self, at: DateTime<Utc>) -> i32 {
        let ms = (at - self.started_at).num_milliseconds().max(0);
        (ms / MINUTE_MS) as i32
    }

    /// Adds the presence interval [from, to) to the minutes it covers.
    fn spread_presence(&mut self, from: DateTime<Utc>, to: DateTime<Utc>) {
        let a = (from - self.started_at).num_milliseconds().max(0);
        let b = (to - self.started_at).num_milliseconds().max(a);
        let mut t = a;
        while t < b {
            let minute = t / MINUTE_MS;
            let end = ((minute + 1) * MINUTE_MS).min(b);
            self.minutes.entry(minute as i32).or_default().attendee_ms += end - t;
            t = end;
        }
    }

    /// Closes a person's open microphone time at `at`.
    fn mic_off(&mut self, user: Uuid, at: DateTime<Utc>) {
        self.mics.retain(|_, u| *u != user);
        if let Some(person) = self.people.get_mut(&user)
            && let Some(since) = person.mic_since.take()
            && !person.attendance_only
        {
            person.mic_ms += (at - since).num_milliseconds().max(0);
        }
    }

    /// Closes a person's open presence at `at` (and their microphone).
    fn close(&mut self, user: Uuid, at: DateTime<Utc>) -> Option<i64> {
        self.mic_off(user, at);
        let person = self.people.get_mut(&user)?;
        let since = person.open_since.take()?;
        let ms = (at - since).num_milliseconds().max(0);
        person.present_ms += ms;
        person.last_leave = Some(at.max(since));
        self.spread_presence(since, at.max(since));
        Some(ms)
    }

    /// The participating person behind a seat (none for a guest, someone
    /// excluded, or someone counted for attendance only).
    fn participant(&self, p: &Value, key: &str) -> Option<Uuid> {
        let seat = self.seats.get(&id(p, key)?)?;
        let person = self.people.get(&seat.user)?;
        (!person.attendance_only).then_some(seat.user)
    }

    /// Folds one event (the next in `seq` order; an older one is ignored).
    /// `excluded`: accounts whose data is erased, never counted. Returns
    /// what it adds to the xAPI record.
    pub(crate) fn apply(&mut self, ev: &LogEvent, excluded: &BTreeSet<Uuid>) -> Vec<Noted> {
        if ev.seq <= self.last_seq {
            return Vec::new();
        }
        self.step(ev, excluded)
    }

    fn step(&mut self, ev: &LogEvent, excluded: &BTreeSet<Uuid>) -> Vec<Noted> {
        self.last_seq = ev.seq;
        self.events += 1;
        if ev.event_type == "session.ended" {
            return self.end(ev);
        }
        self.one(ev, excluded).into_iter().collect()
    }

    /// The class ended: everyone still in leaves with it.
    fn end(&mut self, ev: &LogEvent) -> Vec<Noted> {
        let at = ev.occurred_at;
        self.ended_at = Some(at);
        let open: Vec<Uuid> = self
            .people
            .iter()
            .filter(|(_, p)| p.open_since.is_some())
            .map(|(u, _)| *u)
            .collect();
        open.into_iter()
            .filter_map(|user| {
                let present_ms = self.close(user, at)?;
                Some(Noted {
                    seq: ev.seq,
                    at,
                    what: Happening::Left { user, present_ms },
                })
            })
            .collect()
    }

    fn one(&mut self, ev: &LogEvent, excluded: &BTreeSet<Uuid>) -> Option<Noted> {
        let p = &ev.payload;
        let at = ev.occurred_at;
        let noted = |what| {
            Some(Noted {
                seq: ev.seq,
                at,
                what,
            })
        };
        match ev.event_type.as_str() {
            "participant.joined" => {
                let (Some(seat), Some(user)) = (id(p, "participant_id"), id(p, "user_id")) else {
                    return None;
                };
                if excluded.contains(&user) {
                    return None;
                }
                let role = p
                    .get("role")
                    .and_then(Value::as_str)
                    .unwrap_or("student")
                    .to_owned();
                self.seats.insert(
                    seat,
                    Seat {
                        user,
                        role: role.clone(),
                    },
                );
                let person = self.people.entry(user).or_insert_with(|| Person {
                    role,
                    first_join: at,
                    last_leave: None,
                    present_ms: 0,
                    open_since: None,
                    joins: 0,
                    attendance_only: false,
                    chat: 0,
                    questions: 0,
                    upvotes: 0,
                    poll_answers: 0,
                    poll_correct: 0,
                    hands: 0,
                    speaking_ms: 0,
                    mic_ms: 0,
                    mic_since: None,
                });
                // a second join of a seat already in (a reconnect) is no new visit
                if person.open_since.is_none() {
                    person.open_since = Some(at);
                    person.last_leave = None;
                    person.joins += 1;
                    return noted(Happening::Joined { user });
                }
                None
            }
            "participant.left" => {
                let user = self.seats.get(&id(p, "participant_id")?)?.user;
                let present_ms = self.close(user, at)?;
                noted(Happening::Left { user, present_ms })
            }
            "consent.changed" => {
                if p.get("recording").and_then(Value::as_bool) != Some(false) {
                    return None;
                }
                let user = self.seats.get(&id(p, "participant_id")?)?.user;
                self.decline(user);
                None
            }
            "chat.message" => {
                let user = self.participant(p, "participant_id")?;
                self.people.get_mut(&user)?.chat += 1;
                let m = self.minute_of(at);
                self.minutes.entry(m).or_default().chat += 1;
                None
            }
            "question.asked" => {
                let user = self.participant(p, "participant_id")?;
                self.people.get_mut(&user)?.questions += 1;
                let m = self.minute_of(at);
                self.minutes.entry(m).or_default().questions += 1;
                noted(Happening::Asked { user })
            }
            "question.upvoted" => {
                let user = self.participant(p, "participant_id")?;
                self.people.get_mut(&user)?.upvotes += 1;
                None
            }
            "hand.raised" => {
                let user = self.participant(p, "participant_id")?;
                self.people.get_mut(&user)?.hands += 1;
                let m = self.minute_of(at);
                self.minutes.entry(m).or_default().hands += 1;
                None
            }
            "caption.segment" => {
                let user = self.participant(p, "speaker")?;
                let ms = (num(p, "end_ms")? - num(p, "start_ms")?).max(0);
                self.people.get_mut(&user)?.speaking_ms += ms;
                let m = self.minute_of(at);
                self.minutes.entry(m).or_default().speaking_ms += ms;
                None
            }
            "track.published" => {
                if p.get("kind").and_then(Value::as_str) != Some("audio") {
                    return None;
                }
                let user = self.participant(p, "participant_id")?;
                self.mics.insert(id(p, "track_id")?, user);
                let person = self.people.get_mut(&user)?;
                if person.mic_since.is_none() && person.open_since.is_some() {
                    person.mic_since = Some(at);
                }
                None
            }
            "track.unpublished" => {
                let user = *self.mics.get(&id(p, "track_id")?)?;
                self.mic_off(user, at);
                None
            }
            "participant.muted" => {
                if p.get("media").and_then(Value::as_str) != Some("audio") {
                    return None;
                }
                let user = self.seats.get(&id(p, "participant_id")?)?.user;
                self.mic_off(user, at);
                None
            }
            "poll.opened" => {
                let poll = id(p, "poll_id")?;
                let options: Vec<String> = p
                    .get("options")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|o| o.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                self.polls.insert(
                    poll,
                    Poll {
                        opened_seq: ev.seq,
                        opened_at: at,
                        question: p
                            .get("question")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_owned(),
                        options,
                        correct_option: num(p, "correct_option").map(|n| n as i32),
                        answers: BTreeMap::new(),
                    },
                );
                None
            }
            "poll.voted" => {
                let user = self.participant(p, "participant_id")?;
                let poll_id = id(p, "poll_id")?;
                let option = num(p, "option")? as i32;
                let poll = self.polls.get_mut(&poll_id)?;
                let correct = poll.correct_option.map(|c| c == option);
                let before = poll.answers.insert(user, (option, correct));
                let (question, options) = (poll.question.clone(), poll.options.clone());
                let minute = self.minute_of(at);
                let person = self.people.get_mut(&user)?;
                match before {
                    None => {
                        person.poll_answers += 1;
                        self.minutes.entry(minute).or_default().poll_answers += 1;
                    }
                    Some((_, Some(true))) => person.poll_correct -= 1,
                    Some(_) => {}
                }
                if correct == Some(true) {
                    person.poll_correct += 1;
                }
                noted(Happening::Answered {
                    user,
                    poll: poll_id,
                    question,
                    option,
                    options,
                    correct,
                })
            }
            _ => None,
        }
    }

    /// Someone declined recording: their participation is forgotten and
    /// no longer counted (their presence still is).
    fn decline(&mut self, user: Uuid) {
        let Some(person) = self.people.get_mut(&user) else {
            return;
        };
        person.attendance_only = true;
        person.chat = 0;
        person.questions = 0;
        person.upvotes = 0;
        person.poll_answers = 0;
        person.poll_correct = 0;
        person.hands = 0;
        person.speaking_ms = 0;
        person.mic_ms = 0;
        person.mic_since = None;
        for poll in self.polls.values_mut() {
            poll.answers.remove(&user);
        }
    }

    /// Removes an erased person from the fold (their anonymous minute
    /// counts stay).
    pub(crate) fn forget(&mut self, user: Uuid) {
        self.people.remove(&user);
        self.seats.retain(|_, s| s.user != user);
        for poll in self.polls.values_mut() {
            poll.answers.remove(&user);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn ev(seq: i64, secs: i64, ty: &str, payload: Value) -> LogEvent {
        LogEvent {
            seq,
            event_type: ty.into(),
            occurred_at: t(secs),
            payload,
        }
    }

    fn start() -> Fold {
        let start = ev(
            1,
            0,
            "session.started",
            json!({"course_id": Uuid::from_u128(1), "lesson_id": Uuid::from_u128(2),
                   "lesson_run_id": Uuid::from_u128(3)}),
        );
        Fold::begin(Uuid::from_u128(9), Uuid::from_u128(8), &start).unwrap()
    }

    #[test]
    fn presence_is_spread_over_the_minutes_it_covers() {
        let mut f = start();
        let none = BTreeSet::new();
        let (seat, user) = (Uuid::from_u128(100), Uuid::from_u128(200));
        f.apply(
            &ev(
                2,
                30,
                "participant.joined",
                json!({"participant_id": seat, "user_id": user, "role": "student"}),
            ),
            &none,
        );
        f.apply(
            &ev(3, 150, "participant.left", json!({"participant_id": seat})),
            &none,
        );
        let p = &f.people[&user];
        assert_eq!(p.present_ms, 120_000);
        assert_eq!(p.last_leave, Some(t(150)));
        assert_eq!(f.minutes[&0].attendee_ms, 30_000);
        assert_eq!(f.minutes[&1].attendee_ms, 60_000);
        assert_eq!(f.minutes[&2].attendee_ms, 30_000);
        // a redelivered event changes nothing
        let before = f.clone();
        f.apply(
            &ev(3, 150, "participant.left", json!({"participant_id": seat})),
            &none,
        );
        assert_eq!(f, before);
    }

    #[test]
    fn a_changed_vote_moves_the_correct_count_and_a_decline_forgets() {
        let mut f = start();
        let none = BTreeSet::new();
        let (seat, user, poll) = (
            Uuid::from_u128(100),
            Uuid::from_u128(200),
            Uuid::from_u128(7),
        );
        f.apply(
            &ev(
                2,
                1,
                "participant.joined",
                json!({"participant_id": seat, "user_id": user, "role": "student"}),
            ),
            &none,
        );
        f.apply(
            &ev(3, 2, "poll.opened",
                json!({"poll_id": poll, "question": "2+2?", "options": ["3", "4"], "correct_option": 1})),
            &none,
        );
        f.apply(
            &ev(
                4,
                3,
                "poll.voted",
                json!({"poll_id": poll, "participant_id": seat, "option": 1}),
            ),
            &none,
        );
        assert_eq!(
            (f.people[&user].poll_answers, f.people[&user].poll_correct),
            (1, 1)
        );
        f.apply(
            &ev(
                5,
                4,
                "poll.voted",
                json!({"poll_id": poll, "participant_id": seat, "option": 0}),
            ),
            &none,
        );
        assert_eq!(
            (f.people[&user].poll_answers, f.people[&user].poll_correct),
            (1, 0)
        );
        f.apply(
            &ev(
                6,
                5,
                "chat.message",
                json!({"participant_id": seat, "message_id": Uuid::from_u128(5)}),
            ),
            &none,
        );
        assert_eq!(f.people[&user].chat, 1);
        f.apply(
            &ev(
                7,
                6,
                "consent.changed",
                json!({"participant_id": seat, "recording": false}),
            ),
            &none,
        );
        let p = &f.people[&user];
        assert!(p.attendance_only);
        assert_eq!((p.chat, p.poll_answers), (0, 0));
        assert!(f.polls[&poll].answers.is_empty());
        // still present, no longer counted
        f.apply(
            &ev(
                8,
                7,
                "chat.message",
                json!({"participant_id": seat, "message_id": Uuid::from_u128(6)}),
            ),
            &none,
        );
        assert_eq!(f.people[&user].chat, 0);
        assert!(f.people[&user].open_since.is_some());
    }

    #[test]
    fn an_excluded_account_is_never_counted() {
        let mut f = start();
        let user = Uuid::from_u128(200);
        let excluded = BTreeSet::from([user]);
        let seat = Uuid::from_u128(100);
        let noted = f.apply(
            &ev(
                2,
                1,
                "participant.joined",
                json!({"participant_id": seat, "user_id": user, "role": "student"}),
            ),
            &excluded,
        );
        assert!(noted.is_empty());
        assert!(f.people.is_empty());
    }
}
