//! Taking a seat: who may join a class, as what, and what a rejoin keeps.

use super::*;

pub(super) fn decide_join(state: &SessionState, actor: &Actor, cmd: &Command) -> Decision {
    let Command::Join {
        participant_id,
        user_id,
        role,
        display_name,
        edge_id,
    } = cmd
    else {
        unreachable!("decide_join is only called with Command::Join");
    };
    // Joins come from core (which authenticated the user) or the edge's
    // public-link handler; either way the actor is the joiner or the system.
    let actor_ok = match actor {
        Actor::System => true,
        Actor::Person {
            user_id: actor_user,
            ..
        } => *actor_user == *user_id,
    };
    if !actor_ok {
        return Err(Rejection::forbidden(
            "not_yourself",
            "a participant can only join as themselves",
        ));
    }
    let name = text_field(display_name, "a display name", MAX_LABEL_CHARS)?;
    let role = &enrolled_role(state, *user_id, *role)?;
    match state.participant(*participant_id) {
        Some(p) if p.removed => Err(Rejection::forbidden(
            "removed",
            "you were removed from this session",
        )),
        Some(p) if p.user_id != *user_id => Err(Rejection::conflict(
            "seat_taken",
            "that participant id belongs to someone else",
        )),
        Some(p) if p.present && p.edge_id == *edge_id => Ok(vec![]),
        Some(p) => Ok(vec![EventBody::ParticipantJoined {
            participant_id: *participant_id,
            user_id: *user_id,
            role: p.role,
            display_name: p.display_name.clone(),
            edge_id: edge_id.clone(),
            permissions: p.permissions.clone(),
        }]),
        None => {
            if state.locked && !role.is_staff() {
                return Err(Rejection::forbidden("room_locked", "the room is locked"));
            }
            Ok(vec![EventBody::ParticipantJoined {
                participant_id: *participant_id,
                user_id: *user_id,
                role: *role,
                display_name: name,
                edge_id: edge_id.clone(),
                permissions: role.default_permissions(),
            }])
        }
    }
}
