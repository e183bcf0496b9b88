// WHEP: receive the class's media from the edge. New tracks arrive by
// renegotiation over the `signal` data channel.
import { whepUrl, type EdgeSeat } from './edge';

export interface Subscription {
  pc: RTCPeerConnection;
  /** Ends the media; `gone`: the class has ended, the edge already dropped it (no DELETE). */
  close(gone?: boolean): void;
}

export async function subscribe(
  join: EdgeSeat,
  onTrack: (event: RTCTrackEvent) => void,
  onUpstream?: (state: string) => void,
): Promise<Subscription> {
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const dc = pc.createDataChannel('signal');
  dc.onmessage = async (m) => {
    let msg: { type?: string; sdp?: string; state?: string };
    try {
      msg = JSON.parse(String(m.data));
    } catch {
      return;
    }
    if (msg.type === 'upstream') {
      onUpstream?.(msg.state ?? '');
    } else if (msg.type === 'offer' && msg.sdp) {
      await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
      await pc.setLocalDescription(await pc.createAnswer());
      dc.send(JSON.stringify({ type: 'answer', sdp: pc.localDescription?.sdp }));
    }
  };
  pc.ontrack = onTrack;
  await pc.setLocalDescription(await pc.createOffer());
  let location: string | null = null;
  try {
    const r = await fetch(whepUrl(join), {
      method: 'POST',
      headers: { 'content-type': 'application/sdp', authorization: `Bearer ${join.join_token}` },
      body: pc.localDescription?.sdp,
    });
    const text = await r.text();
    if (r.status !== 201) throw new Error(`the media server refused (HTTP ${r.status})`);
    location = r.headers.get('location');
    await pc.setRemoteDescription({ type: 'answer', sdp: text });
  } catch (e) {
    pc.close();
    throw e;
  }
  return {
    pc,
    close(gone = false) {
      // end the edge's side first, then ours (closing first drops the peer before the DELETE)
      if (!location || gone) return pc.close();
      const url = new URL(location, whepUrl(join)).toString();
      fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${join.join_token}` } })
        .catch(() => {})
        .finally(() => pc.close());
    },
  };
}
