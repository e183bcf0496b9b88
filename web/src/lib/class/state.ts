// Keeps a class's snapshot (SessionView) up to date from the live feed's
// events, as the edge would show it to this participant (protocol/src/view.rs).
import type { ClassEvent, ClassView, QuestionView } from './types';

const CHAT_KEPT = 200;

/** Open questions most upvoted first, then answered and dismissed ones. */
export function sortQuestions(qs: QuestionView[]): QuestionView[] {
  const open = qs.filter((q) => q.status === 'open').sort((a, b) => b.votes - a.votes);
  return [...open, ...qs.filter((q) => q.status !== 'open')];
}

function nameOf(view: ClassView, id: string): string | null {
  return view.participants.find((p) => p.participant_id === id)?.display_name ?? null;
}

/** Applies one event to `view` in place. `me` is the caller's participant id. */
export function apply(view: ClassView, ev: ClassEvent, me: string): void {
  view.seq = ev.seq;
  switch (ev.type) {
    case 'session.ended':
      view.status = 'ended';
      view.ended_at = ev.occurred_at ?? new Date().toISOString();
      break;
    case 'participant.joined': {
      const p = ev.payload;
      const existing = view.participants.find((x) => x.participant_id === p.participant_id);
      if (existing) {
        existing.display_name = p.display_name;
        existing.permissions = p.permissions;
      } else {
        view.participant_count += 1;
        if (view.participants.length > 0 || p.participant_id === me) {
          view.participants.push({
            participant_id: p.participant_id,
            user_id: p.user_id ?? null,
            role: p.role,
            display_name: p.display_name,
            edge_id: p.edge_id,
            permissions: p.permissions,
            hand_raised: false,
            audio_muted: false,
            video_muted: false,
            recording_consent: true,
          });
        }
      }
      break;
    }
    case 'participant.left': {
      const before = view.participants.length;
      view.participants = view.participants.filter((x) => x.participant_id !== ev.payload.participant_id);
      if (before !== view.participants.length || view.participant_count > 0) {
        view.participant_count = Math.max(0, view.participant_count - 1);
      }
      view.hands = view.hands.filter((h) => h !== ev.payload.participant_id);
      break;
    }
    case 'permission.changed': {
      const p = view.participants.find((x) => x.participant_id === ev.payload.participant_id);
      if (p) p.permissions = ev.payload.permissions;
      break;
    }
    case 'participant.muted': {
      const p = view.participants.find((x) => x.participant_id === ev.payload.participant_id);
      if (p && ev.payload.media === 'audio') p.audio_muted = true;
      if (p && ev.payload.media === 'video') p.video_muted = true;
      break;
    }
    case 'consent.changed': {
      const p = view.participants.find((x) => x.participant_id === ev.payload.participant_id);
      if (p) p.recording_consent = ev.payload.recording;
      break;
    }
    case 'whiteboard.stroke':
      if (!view.whiteboard.some((s) => s.stroke_id === ev.payload.stroke_id)) {
        view.whiteboard.push({ ...ev.payload });
      }
      break;
    case 'whiteboard.cleared':
      view.whiteboard = [];
      break;
    case 'recording.armed':
      view.recording.status = 'armed';
      view.recording.armed_at ??= ev.payload.started_at;
      view.recording.runs = (view.recording.runs ?? 0) + 1;
      break;
    case 'recording.segment':
      view.recording.segments += 1;
      view.recording.recorded_ms = Math.max(view.recording.recorded_ms, ev.payload.end_ms);
      break;
    case 'recording.gap':
      view.recording.gaps += 1;
      break;
    case 'recording.alert':
      view.recording.alerts += 1;
      break;
    case 'recording.finalized':
      view.recording.status = 'finalized';
      break;
    case 'hand.raised':
      if (!view.hands.includes(ev.payload.participant_id)) view.hands.push(ev.payload.participant_id);
      break;
    case 'hand.lowered':
      view.hands = view.hands.filter((h) => h !== ev.payload.participant_id);
      break;
    case 'scene.changed':
      view.scene = ev.payload.scene;
      break;
    case 'slide.changed':
      view.slide = { ...ev.payload };
      break;
    case 'layout.changed':
      view.layout = ev.payload.layout;
      break;
    case 'chat.message':
      if (!view.chat.some((m) => m.message_id === ev.payload.message_id)) {
        view.chat.push({
          message_id: ev.payload.message_id,
          participant_id: ev.payload.participant_id,
          display_name: nameOf(view, ev.payload.participant_id),
          text: ev.payload.text,
          seq: ev.seq,
        });
        if (view.chat.length > CHAT_KEPT) view.chat.splice(0, view.chat.length - CHAT_KEPT);
      }
      break;
    case 'chat.deleted':
      view.chat = view.chat.filter((m) => m.message_id !== ev.payload.message_id);
      break;
    case 'question.asked':
      if (!view.questions.some((q) => q.question_id === ev.payload.question_id)) {
        view.questions = sortQuestions([
          ...view.questions,
          {
            question_id: ev.payload.question_id,
            participant_id: ev.payload.participant_id,
            text: ev.payload.text,
            votes: 0,
            upvoted_by_me: false,
            status: 'open',
            answer: null,
          },
        ]);
      }
      break;
    case 'question.upvoted': {
      const q = view.questions.find((x) => x.question_id === ev.payload.question_id);
      if (q) {
        q.votes += 1;
        if (ev.payload.participant_id === me) q.upvoted_by_me = true;
        view.questions = sortQuestions(view.questions);
      }
      break;
    }
    case 'question.answered': {
      const q = view.questions.find((x) => x.question_id === ev.payload.question_id);
      if (q) {
        q.status = 'answered';
        q.answer = ev.payload.answer ?? null;
        view.questions = sortQuestions(view.questions);
      }
      break;
    }
    case 'question.dismissed': {
      const q = view.questions.find((x) => x.question_id === ev.payload.question_id);
      if (q) {
        q.status = 'dismissed';
        view.questions = sortQuestions(view.questions);
      }
      break;
    }
    case 'poll.opened': {
      const poll = {
        poll_id: ev.payload.poll_id,
        question: ev.payload.question,
        options: ev.payload.options,
        open: true,
        total_votes: 0,
        results: null,
        correct_option: null,
        my_vote: null,
      };
      if (!view.polls.some((p) => p.poll_id === poll.poll_id)) view.polls.push(poll);
      if (!view.open_polls.some((p) => p.poll_id === poll.poll_id)) view.open_polls.push({ ...poll });
      break;
    }
    case 'poll.voted':
      for (const list of [view.polls, view.open_polls]) {
        const p = list.find((x) => x.poll_id === ev.payload.poll_id);
        if (!p) continue;
        const mine = ev.payload.participant_id === me;
        if (!(mine && p.my_vote != null)) p.total_votes += 1;
        if (mine) p.my_vote = ev.payload.option;
      }
      break;
    case 'poll.closed': {
      const p = view.polls.find((x) => x.poll_id === ev.payload.poll_id);
      if (p) {
        p.open = false;
        p.results = ev.payload.results;
      }
      view.open_polls = view.open_polls.filter((x) => x.poll_id !== ev.payload.poll_id);
      break;
    }
    case 'note.saved':
      if (ev.payload.participant_id === me && !view.notes.some((n) => n.note_id === ev.payload.note_id)) {
        view.notes.push({ note_id: ev.payload.note_id, text: ev.payload.text, seq: ev.seq });
      }
      break;
    case 'cta.shown':
      view.ctas = [...view.ctas.filter((c) => c.cta_id !== ev.payload.cta_id), { ...ev.payload }];
      break;
    case 'cta.hidden':
      view.ctas = view.ctas.filter((c) => c.cta_id !== ev.payload.cta_id);
      break;
    case 'room.locked':
      view.locked = ev.payload.locked;
      break;
    case 'exam_mode.changed':
      view.exam_mode = ev.payload.enabled;
      break;
    case 'kill_switch.changed': {
      const k = ev.payload.switch.kind;
      if (k === 'chat' || k === 'recording' || k === 'multistream') view.kill_switches[k] = ev.payload.engaged;
      break;
    }
    case 'track.published': {
      const t = ev.payload;
      view.tracks = [
        ...view.tracks.filter((x) => x.track_id !== t.track_id),
        { ...t, simulcast: t.simulcast ?? [] },
      ];
      break;
    }
    case 'track.unpublished':
      view.tracks = view.tracks.filter((x) => x.track_id !== ev.payload.track_id);
      break;
    default:
      break;
  }
}
