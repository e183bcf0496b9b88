// WHIP: publish a stream (camera and microphone) to the class's edge,
// simulcast on video (ported from common.js's EdgeLink.publish).
import { edgeBase } from './edge';
import type { Joined } from './types';

export interface Publication {
  pc: RTCPeerConnection;
  close(): void;
}

/** The WHIP endpoint of the class on its edge. */
export function whipUrl(join: Joined): string {
  return `${edgeBase(join)}/whip/${join.session_id}`;
}

export async function publish(
  join: Joined,
  stream: MediaStream,
  { simulcast = true }: { simulcast?: boolean } = {},
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
    const r = await fetch(whipUrl(join), {
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
    close() {
      if (!location) return pc.close();
      const url = new URL(location, whipUrl(join)).toString();
      fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${join.join_token}` } })
        .catch(() => {})
        .finally(() => pc.close());
    },
  };
}
