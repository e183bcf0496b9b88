// The class's types: the snapshot (SessionView) from web/openapi.json and
// the live feed's events (protocol/src/event.rs), typed by hand because the
// feed's envelope is an open object in the schema.
import type { components } from '../../api/schema';

type S = components['schemas'];
export type ClassView = S['SessionView'];
export type Joined = S['Joined'];
export type Permission = S['Permission'];
export type PollView = S['PollView'];
export type QuestionView = S['QuestionView'];
export type ChatView = S['ChatView'];
export type SlideRef = S['SlideRef'];
export type Cta = S['Cta'];
export type PollResult = S['PollResult'];
export type Stroke = S['Stroke'];

type P<T extends string, B> = { type: T; payload: B };

/** One event of the class, as the live feed sends it (the envelope's useful part). */
export type ClassEvent = { seq: number; occurred_at?: string } & (
  | P<'session.ended', { reason: string }>
  | P<
      'participant.joined',
      {
        participant_id: string;
        user_id?: string;
        role: S['Role'];
        display_name: string;
        edge_id: string;
        permissions: Permission[];
      }
    >
  | P<'participant.left', { participant_id: string; reason: string }>
  | P<'participant.muted', { participant_id: string; media: 'audio' | 'video' }>
  | P<'permission.changed', { participant_id: string; permissions: Permission[] }>
  | P<'hand.raised', { participant_id: string }>
  | P<'hand.lowered', { participant_id: string }>
  | P<'consent.changed', { participant_id: string; recording: boolean }>
  | P<'scene.changed', { scene: S['Scene'] }>
  | P<'slide.changed', SlideRef>
  | P<'layout.changed', { layout: S['Layout'] }>
  | P<'whiteboard.stroke', Stroke>
  | P<'whiteboard.cleared', Record<string, never>>
  | P<'recording.armed', { started_at: string; offset_ms: number }>
  | P<'recording.segment', { index: number; start_ms: number; end_ms: number }>
  | P<'recording.gap', { from_ms: number; to_ms: number; reason: string }>
  | P<'recording.alert', { reason: string }>
  | P<'recording.finalized', { duration_ms: number; segments: number }>
  | P<'chat.message', { message_id: string; participant_id: string; text: string }>
  | P<'chat.deleted', { message_id: string }>
  | P<'question.asked', { question_id: string; participant_id: string; text: string }>
  | P<'question.upvoted', { question_id: string; participant_id: string }>
  | P<'question.answered', { question_id: string; answer?: string }>
  | P<'question.dismissed', { question_id: string }>
  | P<'poll.opened', { poll_id: string; question: string; options: string[]; correct_option?: number }>
  | P<'poll.voted', { poll_id: string; participant_id: string; option: number }>
  | P<'poll.closed', { poll_id: string; results: PollResult[] }>
  | P<'caption.segment', { start_ms: number; end_ms: number; text: string; speaker?: string }>
  | P<'note.saved', { note_id: string; participant_id: string; text: string }>
  | P<'cta.shown', Cta>
  | P<'cta.hidden', { cta_id: string }>
  | P<'room.locked', { locked: boolean }>
  | P<'exam_mode.changed', { enabled: boolean }>
  | P<'kill_switch.changed', { switch: { kind: string; participant_id?: string }; engaged: boolean }>
  | P<
      'track.published',
      { track_id: string; participant_id: string; kind: S['MediaKind']; source: S['TrackSource']; codec: string; simulcast?: string[] }
    >
  | P<'track.unpublished', { track_id: string }>
  | P<
      'destination.status',
      { destination_id: string; status: string; bitrate_kbps?: number; dropped_frames?: number; reason?: string }
    >
  | P<'other', Record<string, unknown>>
);

/** One frame of the live feed (the edge's `LiveMessage`). */
export type LiveMessage =
  | { kind: 'snapshot'; seq: number; state: ClassView }
  | { kind: 'event'; event: ClassEvent }
  | { kind: 'lagged'; resume_after: number }
  | { kind: 'closed'; last_seq: number };
