//! Personal data at rest: the key-management interface ([`kms`]), which
//! fields of which events are personal and how one is sealed ([`seal`],
//! pure), and the vault that keeps each person's data key and seals and
//! opens events on their way into and out of Postgres ([`vault`]), and
//! each tenant's recording key pair, which seals recordings in object
//! storage ([`recording_keys`]).
//!
//! Erasure is crypto-shredding: a person's data key is deleted, so every
//! sealed field of theirs in the append-only log becomes unreadable at once,
//! and readers show the placeholders of [`seal`] in its place.

pub(crate) mod kms;
pub(crate) mod recording_keys;
pub(crate) mod seal;
pub(crate) mod vault;

pub(crate) use recording_keys::RecordingKeys;
pub(crate) use vault::Vault;
