// Downloads an analytics route as CSV (the same route with `Accept: text/csv`).
import { getTokens } from '../session.svelte';

export async function downloadCsv(path: string, filename: string): Promise<void> {
  const tokens = getTokens();
  const response = await fetch(path, {
    headers: {
      Accept: 'text/csv',
      ...(tokens ? { Authorization: `Bearer ${tokens.access_token}` } : {}),
    },
  });
  if (!response.ok) throw new Error(`The download failed (${response.status}).`);
  const blob = await response.blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** "0.8" → "80 %". */
export function pct(x: number | null | undefined): string {
  return x === null || x === undefined ? '–' : `${Math.round(x * 100)} %`;
}
