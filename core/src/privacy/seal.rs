//! Which fields of which class events are personal, and sealing one field
//! under its person's data key. Pure: no I/O, no clock.
//!
//! A sealed field stays a JSON string, so a sealed event still has its
//! schema: `sealed:v1:<user id>:<base64 of nonce ‖ ciphertext ‖ tag>`,
//! AES-256-GCM with the tenant, event, field and person as associated
//! data (a sealed value copied into another event or field does not open).

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde_json::Value;
use uuid::Uuid;

pub(crate) const PREFIX: &str = "sealed:v1:";
/// What an erased person's display name reads as.
pub(crate) const ERASED_NAME: &str = "Former participant";
/// What an erased person's words read as.
pub(crate) const ERASED_TEXT: &str = "[removed at the person's request]";

/// The personal fields of an event type.
pub(crate) fn personal_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "participant.joined" => &["display_name"],
        "chat.message" | "question.asked" | "note.saved" | "caption.segment" => &["text"],
        _ => &[],
    }
}

/// Whose personal data an event carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Owner {
    /// An account, named in the event.
    User(Uuid),
    /// A seat, whose account the `participants` table knows.
    Seat(Uuid),
    /// Nobody's (no personal field, a guest without an account, or a
    /// caption of the room's mix with no speaker).
    Nobody,
}

pub(crate) fn owner(event_type: &str, payload: &Value) -> Owner {
    let id = |k: &str| {
        payload
            .get(k)
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
    };
    match event_type {
        "participant.joined" => id("user_id").map_or(Owner::Nobody, Owner::User),
        "caption.segment" => id("speaker").map_or(Owner::Nobody, Owner::Seat),
        "chat.message" | "question.asked" | "note.saved" => {
            id("participant_id").map_or(Owner::Nobody, Owner::Seat)
        }
        _ => Owner::Nobody,
    }
}

/// A person's data key.
pub(crate) struct DataKey(RandomizedNonceKey);

impl DataKey {
    pub(crate) const LEN: usize = 32;

    pub(crate) fn from_bytes(bytes: &[u8]) -> anyhow::Result<DataKey> {
        anyhow::ensure!(bytes.len() == Self::LEN, "a data key is 32 bytes");
        RandomizedNonceKey::new(&AES_256_GCM, bytes)
            .map(DataKey)
            .map_err(|_| anyhow::anyhow!("unusable data key"))
    }

    /// Fresh key bytes.
    pub(crate) fn generate() -> anyhow::Result<Vec<u8>> {
        let mut k = vec![0u8; Self::LEN];
        aws_lc_rs::rand::fill(&mut k).map_err(|_| anyhow::anyhow!("no randomness"))?;
        Ok(k)
    }
}

/// Where a sealed value belongs; all of it is authenticated.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'a> {
    pub tenant: Uuid,
    pub event_id: Uuid,
    pub field: &'a str,
}

fn aad(place: Place<'_>, user: Uuid) -> Vec<u8> {
    let mut a = Vec::with_capacity(64 + place.field.len());
    a.extend_from_slice(place.tenant.as_bytes());
    a.extend_from_slice(place.event_id.as_bytes());
    a.extend_from_slice(user.as_bytes());
    a.extend_from_slice(place.field.as_bytes());
    a
}

pub(crate) fn seal(key: &DataKey, user: Uuid, place: Place<'_>, plain: &str) -> String {
    let mut buf = plain.as_bytes().to_vec();
    // AES-GCM sealing fails only on absurd lengths (> 64 GiB).
    let nonce = key
        .0
        .seal_in_place_append_tag(Aad::from(aad(place, user)), &mut buf)
        .expect("sealing a field");
    let mut out = nonce.as_ref().to_vec();
    out.extend_from_slice(&buf);
    format!("{PREFIX}{user}:{}", B64.encode(out))
}

/// The person a sealed value belongs to; None for a plain value.
pub(crate) fn sealed_by(value: &str) -> Option<Uuid> {
    let rest = value.strip_prefix(PREFIX)?;
    rest.split_once(':')?.0.parse().ok()
}

/// The plain text of a sealed value, if `key` is its person's key and it
/// was sealed for `place`.
pub(crate) fn open(key: &DataKey, place: Place<'_>, value: &str) -> Option<String> {
    let rest = value.strip_prefix(PREFIX)?;
    let (user, body) = rest.split_once(':')?;
    let user: Uuid = user.parse().ok()?;
    let raw = B64.decode(body).ok()?;
    if raw.len() < NONCE_LEN {
        return None;
    }
    let (nonce, sealed) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buf = sealed.to_vec();
    let plain = key
        .0
        .open_in_place(nonce, Aad::from(aad(place, user)), &mut buf)
        .ok()?;
    String::from_utf8(plain.to_vec()).ok()
}

/// What a field reads as once its person is erased.
pub(crate) fn placeholder(field: &str) -> &'static str {
    if field == "display_name" {
        ERASED_NAME
    } else {
        ERASED_TEXT
    }
}

/// Seals the personal fields of one event's payload for `user`; with no
/// key (the person is erased) they are replaced by placeholders, so nothing
/// of an erased person is written again.
pub(crate) fn seal_payload(
    payload: &mut Value,
    event_type: &str,
    tenant: Uuid,
    event_id: Uuid,
    user: Uuid,
    key: Option<&DataKey>,
) {
    for field in personal_fields(event_type) {
        let Some(slot) = payload.get_mut(*field) else {
            continue;
        };
        let Some(plain) = slot.as_str() else { continue };
        if plain.starts_with(PREFIX) {
            continue;
        }
        let place = Place {
            tenant,
            event_id,
            field,
        };
        *slot = Value::String(match key {
            Some(k) => seal(k, user, place, plain),
            None => placeholder(field).to_owned(),
        });
    }
}

/// Opens the sealed fields of one event's payload with `key_of(person)`;
/// a person with no key (erased) gets placeholders. Returns the people
/// whose fields did not open.
pub(crate) fn open_payload<'k>(
    payload: &mut Value,
    event_type: &str,
    tenant: Uuid,
    event_id: Uuid,
    key_of: impl Fn(Uuid) -> Option<&'k DataKey>,
) -> Vec<Uuid> {
    let mut shut = Vec::new();
    for field in personal_fields(event_type) {
        let Some(slot) = payload.get_mut(*field) else {
            continue;
        };
        let Some(user) = slot.as_str().and_then(sealed_by) else {
            continue;
        };
        let place = Place {
            tenant,
            event_id,
            field,
        };
        let plain = key_of(user).and_then(|k| open(k, place, slot.as_str().unwrap_or_default()));
        *slot = Value::String(match plain {
            Some(p) => p,
            None => {
                shut.push(user);
                placeholder(field).to_owned()
            }
        });
    }
    shut
}

/// The field of a transcript's segment `i` (or of its word `j`).
fn transcript_field(i: usize, j: Option<usize>) -> String {
    match j {
        Some(j) => format!("transcript/{i}/{j}"),
        None => format!("transcript/{i}"),
    }
}

/// Seals the words of a transcript's attributed segments (those with a
/// `speaker` seat) under the speaker's key, the session standing in for the
/// event. `speaker(seat)` names the seat's account and its key (None once
/// erased: the words become the placeholder). Segments of nobody (the
/// room, a guest) stay plain.
pub(crate) fn seal_transcript<'k>(
    transcript: &mut Value,
    tenant: Uuid,
    session: Uuid,
    speaker: impl Fn(&str) -> Option<(Uuid, Option<&'k DataKey>)>,
) {
    let Some(segments) = transcript.get_mut("segments").and_then(Value::as_array_mut) else {
        return;
    };
    for (i, seg) in segments.iter_mut().enumerate() {
        let Some((user, key)) = seg
            .get("speaker")
            .and_then(Value::as_str)
            .and_then(&speaker)
        else {
            continue;
        };
        let Some(key) = key else {
            seg["text"] = Value::String(ERASED_TEXT.to_owned());
            seg["words"] = Value::Array(Vec::new());
            continue;
        };
        let seal_at = |slot: &mut Value, field: &str| {
            if let Some(plain) = slot.as_str()
                && !plain.starts_with(PREFIX)
            {
                let place = Place {
                    tenant,
                    event_id: session,
                    field,
                };
                *slot = Value::String(seal(key, user, place, plain));
            }
        };
        seal_at(&mut seg["text"], &transcript_field(i, None));
        if let Some(words) = seg.get_mut("words").and_then(Value::as_array_mut) {
            for (j, w) in words.iter_mut().enumerate() {
                seal_at(&mut w["text"], &transcript_field(i, Some(j)));
            }
        }
    }
}

/// Opens a transcript sealed by [`seal_transcript`]; a segment whose speaker
/// has no key (erased) reads as the placeholder, without its words.
pub(crate) fn open_transcript<'k>(
    transcript: &mut Value,
    tenant: Uuid,
    session: Uuid,
    key_of: impl Fn(Uuid) -> Option<&'k DataKey>,
) {
    let Some(segments) = transcript.get_mut("segments").and_then(Value::as_array_mut) else {
        return;
    };
    for (i, seg) in segments.iter_mut().enumerate() {
        let Some(user) = seg.get("text").and_then(Value::as_str).and_then(sealed_by) else {
            continue;
        };
        let open_at = |slot: &Value, field: &str| -> Option<String> {
            let key = key_of(user)?;
            let place = Place {
                tenant,
                event_id: session,
                field,
            };
            open(key, place, slot.as_str()?)
        };
        let text = open_at(&seg["text"], &transcript_field(i, None));
        let words: Option<Vec<Value>> = seg
            .get("words")
            .and_then(Value::as_array)
            .map(|ws| {
                ws.iter()
                    .enumerate()
                    .map(|(j, w)| {
                        let mut w = w.clone();
                        let t = open_at(&w["text"], &transcript_field(i, Some(j)))?;
                        w["text"] = Value::String(t);
                        Some(w)
                    })
                    .collect()
            })
            .unwrap_or(Some(Vec::new()));
        match (text, words) {
            (Some(t), Some(ws)) => {
                seg["text"] = Value::String(t);
                seg["words"] = Value::Array(ws);
            }
            _ => {
                seg["text"] = Value::String(ERASED_TEXT.to_owned());
                seg["words"] = Value::Array(Vec::new());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T: Uuid = Uuid::from_u128(1);
    const E: Uuid = Uuid::from_u128(2);
    const ANA: Uuid = Uuid::from_u128(3);
    const BEN: Uuid = Uuid::from_u128(4);

    fn key(b: u8) -> DataKey {
        DataKey::from_bytes(&[b; 32]).unwrap()
    }

    #[test]
    fn the_personal_fields_of_each_event_are_named_and_owned() {
        let seat = Uuid::from_u128(9);
        let chat = json!({ "message_id": E, "participant_id": seat, "text": "hi" });
        assert_eq!(owner("chat.message", &chat), Owner::Seat(seat));
        let joined = json!({ "participant_id": seat, "user_id": ANA, "display_name": "Ana" });
        assert_eq!(owner("participant.joined", &joined), Owner::User(ANA));
        let guest = json!({ "participant_id": seat, "display_name": "Guest" });
        assert_eq!(owner("participant.joined", &guest), Owner::Nobody);
        let mix = json!({ "start_ms": 0, "end_ms": 1, "text": "the room" });
        assert_eq!(owner("caption.segment", &mix), Owner::Nobody);
        let spoken = json!({ "start_ms": 0, "end_ms": 1, "text": "mine", "speaker": seat });
        assert_eq!(owner("caption.segment", &spoken), Owner::Seat(seat));
        assert_eq!(
            owner("poll.voted", &json!({ "participant_id": seat })),
            Owner::Nobody
        );
        assert!(personal_fields("poll.voted").is_empty());
        assert_eq!(personal_fields("note.saved"), &["text"]);
    }

    #[test]
    fn a_sealed_field_hides_its_text_and_opens_only_where_it_was_sealed() {
        let k = key(1);
        let place = Place {
            tenant: T,
            event_id: E,
            field: "text",
        };
        let sealed = seal(&k, ANA, place, "turgor pressure");
        assert!(!sealed.contains("turgor"), "{sealed}");
        assert_eq!(sealed_by(&sealed), Some(ANA));
        assert_eq!(open(&k, place, &sealed).as_deref(), Some("turgor pressure"));
        // another key, event, field or tenant: nothing
        assert_eq!(open(&key(2), place, &sealed), None);
        let moved = Place {
            event_id: Uuid::from_u128(77),
            ..place
        };
        assert_eq!(open(&k, moved, &sealed), None);
        let other_field = Place {
            field: "display_name",
            ..place
        };
        assert_eq!(open(&k, other_field, &sealed), None);
        // claiming another person in the prefix breaks the tag
        let forged = sealed.replacen(&ANA.to_string(), &BEN.to_string(), 1);
        assert_eq!(open(&k, place, &forged), None);
        // a random nonce: the same text seals differently each time
        assert_ne!(seal(&k, ANA, place, "turgor pressure"), sealed);
        assert_eq!(sealed_by("plain text"), None);
        assert_eq!(open(&k, place, "sealed:v1:not-a-uuid:xx"), None);
    }

    #[test]
    fn payloads_seal_and_open_and_an_erased_person_reads_as_a_placeholder() {
        let (ka, kb) = (key(1), key(2));
        let mut a = json!({ "participant_id": ANA, "user_id": ANA, "display_name": "Ana Lima", "role": "student" });
        seal_payload(&mut a, "participant.joined", T, E, ANA, Some(&ka));
        let stored = a.to_string();
        assert!(!stored.contains("Ana Lima"), "{stored}");
        assert_eq!(a["role"], "student", "only personal fields are sealed");
        // sealing twice changes nothing
        let again = a.clone();
        seal_payload(&mut a, "participant.joined", T, E, ANA, Some(&kb));
        assert_eq!(a, again);

        let e2 = Uuid::from_u128(5);
        let mut b = json!({ "participant_id": BEN, "text": "ben's words" });
        seal_payload(&mut b, "chat.message", T, e2, BEN, Some(&kb));

        let keys = |u: Uuid| {
            if u == ANA {
                Some(&ka)
            } else if u == BEN {
                Some(&kb)
            } else {
                None
            }
        };
        let mut open_a = a.clone();
        assert!(open_payload(&mut open_a, "participant.joined", T, E, keys).is_empty());
        assert_eq!(open_a["display_name"], "Ana Lima");

        // ana erased: her name is the placeholder, ben's words still open
        let erased = |u: Uuid| if u == BEN { Some(&kb) } else { None };
        let mut shut_a = a.clone();
        assert_eq!(
            open_payload(&mut shut_a, "participant.joined", T, E, erased),
            vec![ANA]
        );
        assert_eq!(shut_a["display_name"], ERASED_NAME);
        let mut open_b = b.clone();
        assert!(open_payload(&mut open_b, "chat.message", T, e2, erased).is_empty());
        assert_eq!(open_b["text"], "ben's words");

        // an event written after the erasure never holds the words
        let mut late = json!({ "participant_id": ANA, "text": "late words" });
        seal_payload(&mut late, "chat.message", T, e2, ANA, None);
        assert_eq!(late["text"], ERASED_TEXT);
        // a plain payload opens as itself
        let mut plain = json!({ "participant_id": BEN, "text": "legacy row" });
        assert!(open_payload(&mut plain, "chat.message", T, e2, keys).is_empty());
        assert_eq!(plain["text"], "legacy row");
    }

    #[test]
    fn a_transcript_seals_its_speakers_words_and_an_erased_speaker_reads_as_a_placeholder() {
        let (ka, kb) = (key(1), key(2));
        let (seat_a, seat_b) = (
            Uuid::from_u128(11).to_string(),
            Uuid::from_u128(12).to_string(),
        );
        let mut t = json!({ "model": "m", "duration_ms": 9000, "segments": [
            { "start_ms": 0, "end_ms": 2000, "text": "quokkas hop", "speaker": seat_a,
              "words": [{ "start_ms": 0, "end_ms": 900, "text": "quokkas" }, { "start_ms": 900, "end_ms": 2000, "text": "hop" }] },
            { "start_ms": 2000, "end_ms": 4000, "text": "the room says hello", "words": [] },
            { "start_ms": 4000, "end_ms": 6000, "text": "ben speaks", "speaker": seat_b,
              "words": [{ "start_ms": 4000, "end_ms": 6000, "text": "ben" }] },
        ]});
        let speakers = |seat: &str| {
            if seat == seat_a {
                Some((ANA, Some(&ka)))
            } else if seat == seat_b {
                Some((BEN, Some(&kb)))
            } else {
                None
            }
        };
        let plain = t.clone();
        seal_transcript(&mut t, T, E, speakers);
        let stored = t.to_string();
        for hidden in ["quokkas", "hop", "ben speaks"] {
            assert!(!stored.contains(hidden), "{hidden} in {stored}");
        }
        assert!(
            stored.contains("the room says hello"),
            "unattributed stays plain"
        );
        let keys = |u: Uuid| {
            if u == ANA {
                Some(&ka)
            } else if u == BEN {
                Some(&kb)
            } else {
                None
            }
        };
        let mut opened = t.clone();
        open_transcript(&mut opened, T, E, keys);
        assert_eq!(opened, plain);
        // ana erased: her segment is the placeholder, without words
        let erased = |u: Uuid| if u == BEN { Some(&kb) } else { None };
        let mut shut = t.clone();
        open_transcript(&mut shut, T, E, erased);
        assert_eq!(shut["segments"][0]["text"], ERASED_TEXT);
        assert_eq!(shut["segments"][0]["words"], json!([]));
        assert_eq!(shut["segments"][2], plain["segments"][2]);
        // moved to another session: does not open
        let mut moved = t.clone();
        open_transcript(&mut moved, T, Uuid::from_u128(99), keys);
        assert_eq!(moved["segments"][0]["text"], ERASED_TEXT);
        // sealing for an erased speaker writes the placeholder
        let mut late = plain.clone();
        seal_transcript(&mut late, T, E, |s: &str| {
            (s == seat_a).then_some((ANA, None))
        });
        assert_eq!(late["segments"][0]["text"], ERASED_TEXT);
        assert_eq!(late["segments"][2]["text"], "ben speaks");
    }
}
