// Shared by the teacher and student pages: core API calls, WHIP/WHEP,
// the live feed. Plain browser JavaScript, no build step.
'use strict';

const core = {
  token: null,
  async call(method, path, body, contentType = 'application/json') {
    const headers = { 'content-type': contentType };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    const raw = body === undefined || typeof body === 'string' ? body : JSON.stringify(body);
    const r = await fetch(path, { method, headers, body: raw });
    const text = await r.text();
    const json = text ? JSON.parse(text) : null;
    if (!r.ok) throw new Error(`${r.status} ${json && json.error ? json.error.code + ': ' + json.error.message : text}`);
    return json;
  },
  async login(email, password) {
    const v = await this.call('POST', '/auth/login', { email, password });
    this.token = v.access_token;
    return v;
  },
};

/// One edge connection: the join answer from core (edge url, join token).
class EdgeLink {
  constructor(join, sessionId) {
    this.join = join;
    this.session = sessionId;
    this.edge = join.edge.url;
  }
  async command(path, body) {
    const r = await fetch(`${this.edge}/sessions/${this.session}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${this.join.join_token}` },
      body: JSON.stringify(body || {}),
    });
    const v = await r.json().catch(() => null);
    if (!r.ok) throw new Error(`${r.status} ${v && v.error ? v.error.code : ''}`);
    return v;
  }
  async signal(kind, pc) {
    await pc.setLocalDescription(await pc.createOffer());
    const r = await fetch(`${this.edge}/${kind}/${this.session}`, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp', authorization: `Bearer ${this.join.join_token}` },
      body: pc.localDescription.sdp,
    });
    if (r.status !== 201) throw new Error(`${kind} refused: ${r.status} ${await r.text()}`);
    this.location = r.headers.get('location');
    await pc.setRemoteDescription({ type: 'answer', sdp: await r.text() });
  }
  /// WHIP: publish a stream (camera + mic), simulcast on video.
  async publish(stream, { simulcast = true } = {}) {
    const pc = new RTCPeerConnection();
    for (const track of stream.getTracks()) {
      if (track.kind === 'video' && simulcast) {
        pc.addTransceiver(track, {
          direction: 'sendonly',
          sendEncodings: [
            { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
            { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
            { rid: 'f', maxBitrate: 1500000 },
          ],
        });
      } else {
        pc.addTransceiver(track, { direction: 'sendonly' });
      }
    }
    await this.signal('whip', pc);
    this.pc = pc;
    return pc;
  }
  /// WHEP: receive every track of the class; new tracks arrive by
  /// renegotiation on the data channel.
  async subscribe(onTrack) {
    const pc = new RTCPeerConnection();
    pc.addTransceiver('video', { direction: 'recvonly' });
    pc.addTransceiver('audio', { direction: 'recvonly' });
    const dc = pc.createDataChannel('signal');
    dc.onmessage = async (m) => {
      const msg = JSON.parse(m.data);
      if (msg.type === 'upstream') {
        // a far edge: the class's media is reconnecting through the relay, or back
        if (this.onUpstream) this.onUpstream(msg.state);
        return;
      }
      if (msg.type === 'offer') {
        await pc.setRemoteDescription(msg);
        await pc.setLocalDescription(await pc.createAnswer());
        dc.send(JSON.stringify({ type: 'answer', sdp: pc.localDescription.sdp }));
      }
    };
    pc.ontrack = (e) => onTrack(e);
    await this.signal('whep', pc);
    this.pc = pc;
    return pc;
  }
  /// The live feed: calls onEvent(event) in seq order; reconnects with
  /// ?after= so nothing is missed or repeated.
  feed(onEvent, onSnapshot) {
    let last = null;
    const open = () => {
      const base = this.edge.replace(/^http/, 'ws');
      const after = last === null ? '' : `&after=${last}`;
      const ws = new WebSocket(`${base}/sessions/${this.session}/live?token=${this.join.join_token}${after}`);
      ws.onmessage = (m) => {
        const msg = JSON.parse(m.data);
        if (msg.kind === 'snapshot') { last = msg.seq; onSnapshot && onSnapshot(msg.state); }
        else if (msg.kind === 'event') { last = msg.event.seq; onEvent(msg.event); }
      };
      ws.onclose = () => setTimeout(open, 1000);
    };
    open();
  }
}

function $(id) { return document.getElementById(id); }
function log(text) {
  const li = document.createElement('li');
  li.textContent = text;
  $('log').prepend(li);
}
function params() { return new URLSearchParams(location.search); }

/// Counts decoded video frames and received audio for tests and the UI.
async function mediaStats(pc) {
  const out = { framesDecoded: 0, audioSamples: 0, audioPackets: 0, audioLevel: 0, videoTracks: 0 };
  if (!pc) return out;
  const stats = await pc.getStats();
  stats.forEach((s) => {
    if (s.type === 'inbound-rtp' && s.kind === 'video') { out.framesDecoded += s.framesDecoded || 0; if (s.framesDecoded) out.videoTracks++; }
    if (s.type === 'inbound-rtp' && s.kind === 'audio') { out.audioSamples += s.totalSamplesReceived || 0; out.audioPackets += s.packetsReceived || 0; out.audioLevel = Math.max(out.audioLevel, s.audioLevel || 0); }
  });
  return out;
}

/// Live captions under the video: the latest `caption.segment` of the live
/// feed, read out politely by screen readers, with a CC button to hide or
/// show them (remembered on this device).
class CaptionBar {
  constructor(parent) {
    if (!document.getElementById('caption-style')) {
      const style = document.createElement('style');
      style.id = 'caption-style';
      style.textContent = '.captions{display:flex;gap:.5rem;align-items:flex-start;max-width:32rem;margin:.2rem}'
        + '.captions p{flex:1;margin:0;min-height:2.6em;padding:.3rem .6rem;background:#111;color:#fff;font-size:1.1rem;line-height:1.3;border-radius:.25rem}'
        + '.captions p:empty{visibility:hidden}.captions[data-on="false"] p{display:none}'
        + '.captions button[aria-pressed="true"]{font-weight:bold}';
      document.head.append(style);
    }
    this.box = document.createElement('div');
    this.box.className = 'captions';
    this.button = document.createElement('button');
    this.button.id = 'cc';
    this.button.textContent = 'CC';
    this.button.title = 'Show or hide live captions';
    this.text = document.createElement('p');
    this.text.id = 'caption';
    this.text.setAttribute('role', 'status');
    this.text.setAttribute('aria-live', 'polite');
    this.text.setAttribute('aria-label', 'Live captions');
    this.box.append(this.button, this.text);
    parent.append(this.box);
    this.set(localStorage.getItem('captions') !== 'off');
    this.button.onclick = () => this.set(!this.on);
    this.timer = null;
  }
  set(on) {
    this.on = on;
    localStorage.setItem('captions', on ? 'on' : 'off');
    this.button.setAttribute('aria-pressed', String(on));
    this.box.dataset.on = String(on);
  }
  /// Shows a caption event (others are ignored); it fades after a silence.
  show(e) {
    if (e.type !== 'caption.segment') return false;
    this.text.textContent = e.payload.text;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.text.textContent = ''; }, 10000);
    return true;
  }
}
