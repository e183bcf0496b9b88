// WHIP: publish a stream to the class's edge: the camera and microphone
// (simulcast on video) or a screen share (`source: 'screen'`).
import { edgeBase } from './edge';
import type { Joined } from './types';

export interface Publication {
  pc: RTCPeerConnection;
  /** Ends the media; `gone`: the class has ended, the edge already dropped it (no DELETE). */
  close(gone?: boolean): void;
}

/** The WHIP endpoint of the class on its edge. */
export function whipUrl(join: Joined, source: 'camera' | 'screen' = 'camera'): string {
  const base = `${edgeBase(join)}/whip/${join.session_id}`;
  return source === 'screen' ? `${base}?source=screen` : base;
}

export async function publish(
  join: Joined,
  stream: MediaStream,
  { simulcast = true, source = 'camera' }: { simulcast?: boolean; source?: 'camera' | 'screen' } = {},
): Promise<Publication> {
  const pc = new RTCPeerConnection();
  for (const track of stream.getTracks()) {
    if (track.kind === 'video' && simulcast) {
      pc.addTransceiver(track, {
        direction: 'sendonly',
        streams: [stream],
        sendEncodings: [
          { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150_000 },
          { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
          { rid: 'f', maxBitrate: 1_500_000 },
        ],
      });
    } else {
      pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
    }
  }
  await pc.setLocalDescription(await pc.createOffer());
  let location: string | null = null;
  try {
    const r = await fetch(whipUrl(join, source), {
      method: 'POST',
      headers: { 'content-type': 'application/sdp', authorization: `Bearer ${join.join_token}` },
      body: pc.localDescription?.sdp,
    });
    const text = await r.text();
    if (r.status !== 201) {
      let why = `HTTP ${r.status}`;
      try {
        const body = JSON.parse(text) as { error?: { message?: string } };
        if (body.error?.message) why = body.error.message;
      } catch {
        /* not the api.md error body */
      }
      throw new Error(`the media server refused: ${why}`);
    }
    location = r.headers.get('location');
    await pc.setRemoteDescription({ type: 'answer', sdp: text });
  } catch (e) {
    pc.close();
    throw e;
  }
  return {
    pc,
    close(gone = false) {
      if (!location || gone) return pc.close();
      const url = new URL(location, whipUrl(join, source)).toString();
      fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${join.join_token}` } })
        .catch(() => {})
        .finally(() => pc.close());
    },
  };
}
